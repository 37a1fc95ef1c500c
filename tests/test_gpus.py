"""GPU slots (pipeline/gpus.py) with real processes and real flocks: GPUs named by PIPELINE_STANDIN_GPUS stand in
for real ones (the jobs compute on the CPU, everything else is as on a GPU machine)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from helpers import ROOT
from pipeline import gpus


# A job as the workflow's scripts start one: claim (job_device without its torch.device), then report what it holds
# and keep it until stdin closes. The standard library only: no torch import per process, so the test stays fast.
HOLDER = """
import json, os, sys
sys.path.insert(0, sys.argv[1])
from pipeline import gpus
try:
    device = gpus.claim_device(sys.argv[2], json.loads(sys.argv[3]), sys.argv[4])
except gpus.SlotTimeout as e:
    print(json.dumps({"timeout": str(e)}), flush=True)
    sys.exit(3)
print(json.dumps({"pid": os.getpid(), "device": device, "record": gpus.placement(),
                  "cvd": os.environ.get("CUDA_VISIBLE_DEVICES")}), flush=True)
sys.stdin.read()
"""


def env(standin="0,1,2", **extra) -> dict:
    e = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", gpus.SCHEDULER_ENV)}
    e.update({gpus.STANDIN_ENV: standin, **extra})
    return e


def start(cfg: dict, job: str, environ: dict, device: str = "auto") -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", HOLDER, str(ROOT), device, json.dumps(cfg), job],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=environ)


def report(p: subprocess.Popen) -> dict:
    line = p.stdout.readline()
    assert line, p.stderr.read()
    return json.loads(line)


def stop(procs):
    for p in procs:
        if p.poll() is None:
            p.stdin.close()
            p.wait(timeout=30)


def test_concurrent_jobs_get_distinct_slots_k_per_gpu(tmp_path):
    cfg = {"jobs_per_gpu": 2, "lock_dir": str(tmp_path / "locks"), "wait_s": 30}
    procs = [start(cfg, f"train seed={i}", env("0,1,2")) for i in range(6)]  # all start at once
    try:
        held = [report(p) for p in procs]
        slots = [(h["record"]["index"], h["record"]["slot"]) for h in held]
        assert sorted(slots) == [(g, k) for g in (0, 1, 2) for k in (0, 1)]  # 6 jobs, 6 distinct slots
        for h in held:
            assert h["cvd"] == str(h["record"]["index"])  # the job sees only its GPU
            assert h["device"] == "cpu" and h["record"]["chosen_by"] == "slot"
            lock = gpus.lock_path(tmp_path / "locks", h["cvd"], h["record"]["slot"])
            record = json.loads(lock.read_text())
            assert record["pid"] == h["pid"] and record["job"].startswith("train seed=")
        # a seventh job finds all 2 x 3 slots taken and fails after its wait, naming the directory and the holders
        late = start({**cfg, "wait_s": 1}, "evaluate seed=9", env("0,1,2"))
        message = report(late)["timeout"]
        assert late.wait(timeout=30) == 3
        assert str((tmp_path / "locks").resolve()) in message and "evaluate seed=9" in message
        assert "ids x jobs_per_gpu = 6" in message
        for h in held:
            assert f"pid {h['pid']} on " in message
        assert message.count("GPU ") >= 6 and "train seed=" in message
    finally:
        stop(procs)


def test_jobs_spread_over_gpus_before_sharing(tmp_path):
    cfg = {"jobs_per_gpu": 3, "lock_dir": str(tmp_path / "locks")}
    first = start(cfg, "a", env("0,1"))
    second = start(cfg, "b", env("0,1"))
    try:
        gpus_held = {report(first)["record"]["index"], report(second)["record"]["index"]}
        assert gpus_held == {0, 1}
    finally:
        stop([first, second])


def test_explicit_ids_pick_among_the_visible_gpus(tmp_path):
    cfg = {"ids": [1, 3], "lock_dir": str(tmp_path / "locks")}
    procs = [start(cfg, f"j{i}", env("0,1,2,3")) for i in range(2)]
    try:
        assert sorted(report(p)["record"]["index"] for p in procs) == [1, 3]
    finally:
        stop(procs)
    bad = start({"ids": [0, 5]}, "j", env("0,1"))
    assert bad.wait(timeout=30) != 0
    assert "GPUs [5] do not exist here" in bad.stderr.read()


def test_killed_holder_frees_its_slot(tmp_path):
    cfg = {"jobs_per_gpu": 1, "lock_dir": str(tmp_path / "locks"), "wait_s": 20}
    a, b = start(cfg, "a", env("0,1")), start(cfg, "b", env("0,1"))
    try:
        ha, hb = report(a), report(b)
        os.kill(ha["pid"], signal.SIGKILL)  # no clean-up runs: the kernel drops the flock with the process
        a.wait(timeout=30)
        c = start(cfg, "c", env("0,1"))
        hc = report(c)
        assert (hc["record"]["index"], hc["record"]["slot"]) == (ha["record"]["index"], 0)
        assert hc["record"]["index"] != hb["record"]["index"]
        stop([c])
    finally:
        stop([a, b])


def test_waiting_job_gets_the_slot_when_it_comes_free(tmp_path):
    cfg = {"lock_dir": str(tmp_path / "locks"), "wait_s": 30}
    a = start(cfg, "a", env("0"))
    try:
        report(a)
        b = start(cfg, "b", env("0"))
        time.sleep(1.5)
        assert b.poll() is None  # still waiting
        stop([a])
        assert report(b)["record"]["slot"] == 0
        stop([b])
    finally:
        stop([a])


def test_scheduler_gpus_are_used_and_nothing_claimed(tmp_path):
    locks = tmp_path / "locks"
    p = start({"lock_dir": str(locks)}, "train", env("0,1,2,3", CUDA_VISIBLE_DEVICES="2",
                                                      **{gpus.SCHEDULER_ENV: "4242"}))
    try:
        h = report(p)
        assert h["cvd"] == "2" and h["record"]["index"] == 2 and h["record"]["slot"] is None
        assert h["record"]["chosen_by"] == "scheduler"
        assert not locks.exists()
    finally:
        stop([p])
    # claim: always claims even there; claim: never never claims
    p = start({"lock_dir": str(locks), "claim": "always"}, "t", env("0,1", **{gpus.SCHEDULER_ENV: "1"}))
    try:
        assert report(p)["record"]["slot"] == 0 and any(locks.iterdir())
    finally:
        stop([p])
    p = start({"lock_dir": str(tmp_path / "none"), "claim": "never"}, "t", env("0,1"))
    try:
        assert report(p)["record"]["chosen_by"] == "scheduler" and not (tmp_path / "none").exists()
    finally:
        stop([p])


def test_cpu_job_claims_nothing(tmp_path):
    e = {k: v for k, v in env().items() if k != gpus.STANDIN_ENV}
    p = start({"lock_dir": str(tmp_path / "locks")}, "t", {**e, "CUDA_VISIBLE_DEVICES": ""}, device="auto")
    try:
        h = report(p)
        assert h["device"] == "cpu" and h["record"]["slot"] is None and h["record"]["chosen_by"] == "cpu"
        assert not (tmp_path / "locks").exists()
    finally:
        stop([p])


def test_settings_reject_bad_values():
    assert gpus.settings(None) == gpus.DEFAULTS
    for bad, key in [({"ids": [0, 0]}, "ids"), ({"ids": "first"}, "ids"), ({"jobs_per_gpu": 0}, "jobs_per_gpu"),
                     ({"claim": "maybe"}, "claim"), ({"wait": 3}, "unknown")]:
        with pytest.raises(ValueError, match=key):
            gpus.settings(bad)


def test_slot_order_spreads_first():
    assert gpus.slot_order(["0", "1"], 2) == [("0", 0), ("1", 0), ("0", 1), ("1", 1)]


def test_status_command_lists_holders(tmp_path):
    cfg = {"lock_dir": str(tmp_path / "locks")}
    a, b = start(cfg, "train seed=1", env("0,1")), start(cfg, "train seed=2", env("0,1"))
    try:
        ha, hb = report(a), report(b)
        stop([b])  # its lock file stays, its lock goes
        done = subprocess.run([sys.executable, "-m", "pipeline.gpus", "--lock-dir", str(tmp_path / "locks"),
                               "--jobs-per-gpu", "3"], capture_output=True, text=True, cwd=ROOT, env=env("0,1"),
                              timeout=60)
        assert done.returncode == 0, done.stderr
        assert "GPUs visible: 2 (0, 1); with jobs_per_gpu 3: --resources gpu=6" in done.stdout
        lines = {line.split(":")[0].strip(): line for line in done.stdout.splitlines()[2:]}
        held = gpus.lock_path("", str(ha["record"]["index"]), 0).name
        freed = gpus.lock_path("", str(hb["record"]["index"]), 0).name
        assert f"held by pid {ha['pid']}" in lines[held] and "train seed=1" in lines[held]
        assert lines[freed].endswith(": free")
    finally:
        stop([a, b])
