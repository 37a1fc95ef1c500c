"""Checks for .ci/slurm.sh, read from Snakemake's output and SLURM's job completion log.

    verify.py dag DRYRUN_LOG PROFILE
        the dry run built a DAG; print its jobs per rule; every job that asks for a GPU is routed by the
        profile to another partition than the default one.
    verify.py run --dry-run LOG --log LOG --jobcomp FILE --workdir DIR --config FILE [FILE ...]
        every job the dry run planned ran; every job with an action went through sbatch (one SLURM job
        each, COMPLETED with exit code 0, its log kept); the zarr stores load and have the configured shapes;
        every trained run has its model and metrics.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

JOB_HEADER = re.compile(r"^(local)?rule (\w+):$")
SUBMITTED = re.compile(r"^Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (.+)\)\.$", re.M)
FINISHED = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)$", re.M)


def fail(message: str) -> None:
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def job_stats(text: str) -> Counter:
    """The first 'Job stats' table of a Snakemake log: jobs per rule."""
    lines = text.splitlines()
    try:
        start = lines.index("Job stats:") + 3
    except ValueError:
        fail("no 'Job stats' table in the dry run: nothing to do, or the DAG did not build")
    stats = Counter()
    for line in lines[start:]:
        if not line.strip() or line.startswith("total"):
            break
        rule, count = line.split()
        stats[rule] = int(count)
    return stats


def job_blocks(text: str) -> list[dict]:
    """One dict per job block ('rule x:' or 'localrule x:' and its indented fields) of a Snakemake log."""
    jobs, job = [], None
    for line in text.splitlines():
        header = JOB_HEADER.match(line)
        if header:
            job = {"rule": header[2], "local": bool(header[1])}
            jobs.append(job)
        elif job is not None and line.startswith("    ") and ": " in line:
            key, value = line.strip().split(": ", 1)
            job[key] = value
        else:
            job = None
    for job in jobs:
        job["jobid"] = int(job["jobid"])
        job["resources"] = dict(kv.split("=", 1) for kv in job.get("resources", "").split(", ") if "=" in kv)
    return jobs


def print_table(header: list[str], rows: list[list]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip())


def default_partition(profile: Path) -> str | None:
    for entry in yaml.safe_load(profile.read_text()).get("default-resources", []):
        key, _, value = str(entry).partition("=")
        if key.strip() == "slurm_partition":
            return value.strip().strip("'\"")
    return None


def check_dag(log: Path, profile: Path) -> None:
    text = log.read_text()
    stats = job_stats(text)
    jobs = job_blocks(text)
    print_table(["rule", "jobs"], [[r, n] for r, n in stats.items()] + [["total", sum(stats.values())]])

    cpu_partition = default_partition(profile)
    gpu_jobs = [j for j in jobs if int(j["resources"].get("gpu", 0) or 0) > 0]
    unrouted = sorted({j["rule"] for j in gpu_jobs if j["resources"].get("slurm_partition") == cpu_partition})
    if unrouted:
        fail(f"GPU rules left on the default partition {cpu_partition!r}: {', '.join(unrouted)}; "
             f"add them to set-resources in {profile}")
    routed = sorted({f"{j['rule']}->{j['resources'].get('slurm_partition')}" for j in gpu_jobs})
    print(f"GPU jobs: {len(gpu_jobs)} ({', '.join(routed) or 'none'})")
    set_resources = yaml.safe_load(profile.read_text()).get("set-resources", {}) or {}
    absent = sorted(set(set_resources) - set(stats))
    if absent:
        print(f"note: set-resources of {profile} names rules without jobs in this DAG: {', '.join(absent)}")


def load_config(paths: list[Path]) -> dict:
    from snakemake.utils import update_config

    config = {}
    for path in paths:
        update_config(config, yaml.safe_load(path.read_text()))
    return config


def check_stores(workdir: Path, config: dict) -> int:
    """Every zarr store under results/data loads and has the shape the config gives it."""
    from pipeline import datasets
    from pipeline.catalogue import frame_range
    from pipeline.families import family_sims

    data = config["data"]
    rows = []
    for path in sorted((workdir / "results" / "data").glob("*.zarr")):
        dataset = datasets.load(path)
        family = dataset.attrs["family"]
        first, last = frame_range(data[family])
        sims = 4 if family == "equivariance" else len(family_sims(family, data))
        expected = (sims, last - first, 2, data["grid"], data["grid"])
        if dataset.velocity.shape != expected:
            fail(f"{path.name}: shape {dataset.velocity.shape}, expected {expected} from the config")
        rows.append([path.name, "x".join(map(str, expected)), dataset.velocity.dtype])
    print_table(["store", "shape", "dtype"], rows)
    levels = workdir / "results" / "data" / "equivariance_levels.csv"
    if levels.exists():
        n = len(levels.read_text().strip().splitlines()) - 1
        if n != data["equivariance"]["levels"]:
            fail(f"{levels.name}: {n} levels, expected {data['equivariance']['levels']}")
    return len(rows)


def scontrol_job(slurm_id: str) -> dict:
    """SLURM's record of a job (kept by slurmctld for MinJobAge after the job ends)."""
    out = subprocess.run(["scontrol", "show", "job", "-o", slurm_id], capture_output=True, text=True, check=True)
    return dict(kv.split("=", 1) for kv in out.stdout.split() if "=" in kv)


def check_run(args) -> None:
    planned = job_stats(args.dry_run.read_text())
    text = args.log.read_text()
    finished = {int(j): rule for j, rule in FINISHED.findall(text)}
    submitted = {int(j): (s, Path(p)) for j, s, p in SUBMITTED.findall(text)}
    local = {j["jobid"] for j in job_blocks(text) if j["local"]}
    run_id = re.search(r"^SLURM run ID: (\S+)$", text, re.M)
    if not run_id:
        fail("no 'SLURM run ID' in the Snakemake log: the slurm executor did not run")

    records = []
    for line in args.jobcomp.read_text().splitlines():
        fields = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
        if fields.get("Name") == run_id[1]:
            records.append(fields)
    by_id = {r["JobId"]: r for r in records}

    ran = Counter(finished.values())
    if ran != planned:
        fail(f"jobs run per rule {dict(ran)} differ from the dry run's {dict(planned)}")
    not_submitted = sorted(finished[j] for j in set(finished) - set(submitted) - local)
    if not_submitted:
        fail(f"jobs that finished without an sbatch submission: {not_submitted}")
    if len(records) != len(submitted) or set(by_id) != {s for s, _ in submitted.values()}:
        fail(f"{len(submitted)} sbatch submissions in the Snakemake log, {len(records)} SLURM jobs of run "
             f"{run_id[1]} in the job completion log")

    sbatch, partitions, gpus = Counter(), defaultdict(set), Counter()
    for jobid, (slurm_id, log) in sorted(submitted.items()):
        rule, record = finished[jobid], by_id[slurm_id]
        if record["JobState"] != "COMPLETED" or record["ExitCode"] != "0:0":
            fail(f"SLURM job {slurm_id} ({rule}): {record['JobState']}, exit code {record['ExitCode']}")
        if not log.is_file():
            fail(f"SLURM log {log} of job {slurm_id} is missing")
        gpu = re.search(r"gres[:/]gpu[:=](\d+)", scontrol_job(slurm_id).get("TresPerJob", ""))
        sbatch[rule] += 1
        partitions[rule].add(record["Partition"])
        gpus[rule] += int(gpu[1]) if gpu else 0
    print_table(["rule", "planned", "run", "sbatch", "partition", "gpus", "local"],
                [[rule, n, ran[rule], sbatch[rule], ",".join(sorted(partitions[rule])) or "-", gpus[rule],
                  n - sbatch[rule]] for rule, n in planned.items()])
    unlimited = sorted({finished[j] for j, (s, _) in submitted.items() if by_id[s]["TimeLimit"] == "UNLIMITED"})
    if unlimited:
        print(f"note: rules without a runtime resource (sbatch got no -t): {', '.join(unlimited)}")
    local_rules = ", ".join(sorted({finished[j] for j in local})) or "none"
    print(f"jobs: {sum(planned.values())} planned, {len(finished)} run, {len(submitted)} submitted with sbatch "
          f"and COMPLETED in SLURM, {len(finished) - len(submitted)} local ({local_rules})")
    print(f"stores: {check_stores(args.workdir, load_config(args.config))} load with the configured shapes")
    runs = sorted((args.workdir / "results").glob("**/metrics.json"))
    for path in runs:
        if not json.loads(path.read_text()) or not (path.parent / "model.pt").is_file():
            fail(f"{path}: empty metrics, or no model.pt beside it")
    print(f"runs: {len(runs)} with metrics.json and model.pt")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    dag = sub.add_parser("dag")
    dag.add_argument("log", type=Path)
    dag.add_argument("profile", type=Path)
    run = sub.add_parser("run")
    run.add_argument("--dry-run", type=Path, required=True)
    run.add_argument("--log", type=Path, required=True)
    run.add_argument("--jobcomp", type=Path, required=True)
    run.add_argument("--workdir", type=Path, required=True)
    run.add_argument("--config", type=Path, nargs="+", required=True)
    args = parser.parse_args()
    if args.command == "dag":
        check_dag(args.log, args.profile / "config.yaml" if args.profile.is_dir() else args.profile)
    else:
        check_run(args)


if __name__ == "__main__":
    main()
