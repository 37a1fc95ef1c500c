"""The DAG-time modules: run settings, the params of each job, and that they import without numpy or torch."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import yaml
from helpers import CONFIG, ROOT, snakemake_args, tiny_config

from pipeline import config as pipeline_config
from pipeline import runs

# What the jobs' environments bring and an environment with only Snakemake lacks (numpy and pandas come with
# Snakemake's slurm plugin, but the DAG-time modules must not need them either).
JOBS_ONLY = ("torch", "escnn", "scipy", "zarr", "phi", "phiml", "matplotlib", "tqdm")
NOT_STDLIB = JOBS_ONLY + ("numpy", "pandas")


def run_blocked(blocked: tuple[str, ...], code: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``code`` where importing any of ``blocked`` fails, as in an environment without them."""
    block = textwrap.dedent(f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {blocked!r}:
                    raise ModuleNotFoundError(f"blocked: {{name}}")
        sys.meta_path.insert(0, Block())
        sys.path.insert(0, {str(ROOT)!r})
    """)
    return subprocess.run([sys.executable, "-c", block + textwrap.dedent(code), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


# A model of one's own (docs/custom-models.md) on the paper's rotation data, the levels and in the search: its
# module is never imported while the DAG is built (here it does not even exist).
CUSTOM = {"custom_models": {"mynet": {"symmetries": ["rotation"], "builder": "no_such_package.nets:build",
                                      "name": "MyNet"}},
          "models": {"rotation": ["conv", "mynet"], "equivariance": ["conv", "mynet"]},
          "tuning": {"models": {"rotation": ["conv", "mynet"]}}}


def test_dag_time_modules_import_without_numpy_or_torch():
    done = run_blocked(NOT_STDLIB, f"""
        from pipeline import catalogue, config, models, runs
        cfg = config.validate(config.load("config.yaml"))
        assert models.names("rotation") and runs.train_params(cfg, "rotation", "rsteer")
        for key, value in {CUSTOM!r}.items():  # merged as --configfile merges
            cfg[key] = ({{**cfg.get(key, {{}}), **value}} if key != "tuning"
                        else {{**cfg[key], "models": {{**cfg[key]["models"], **value["models"]}}}})
        cfg = config.validate(cfg)
        assert runs.train_params(cfg, "rotation", "mynet")["builder"] == "no_such_package.nets:build"
    """)
    assert done.returncode == 0, done.stderr[-3000:]


def test_snakemake_builds_the_dag_without_numpy_or_torch(tmp_path):
    (tmp_path / "custom.yaml").write_text(yaml.safe_dump(CUSTOM))
    for overlay in ([], [CONFIG, tmp_path / "custom.yaml"]):
        done = run_blocked(JOBS_ONLY, """
            import sys
            from snakemake.cli import main
            main(sys.argv[1:])
        """, *snakemake_args(["all"], tmp_path, overlay, "-n"))
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        if overlay:  # mynet is searched (then trained on the rotation family and every level)
            assert "results/tuning/rotation/mynet/trials.yaml" in done.stdout
            assert "results/runs/equivariance_9/mynet/seed2/metrics.json" in done.stdout


def test_settings_resolution_order():
    cfg = pipeline_config.load(CONFIG)
    s, hp = runs.settings(cfg, "scaling", "rsteer")
    assert (s.batch, s.lr, s.decay, s.weight_decay, s.out_length) == (8, 1e-4, 0.95, 4e-4, 6)
    assert (hp["hidden"], hp["alpha"], hp["kernel_size"], hp["scales"]) == (64, 1e-6, 5, [1.0, 1.5, 2.0, 2.5])
    s, hp = runs.settings(cfg, "equivariance_4", "rsteer", alpha=0.5)
    assert (s.batch, s.decay, hp["hidden"], hp["alpha"]) == (32, 0.9, 32, 0.5)
    s, hp = runs.settings(cfg, "translation", "rgroup")
    assert (hp["hidden"], hp["banks"], hp["kernel_size"], hp["alpha"], s.batch, s.lr) == (128, 2, 3, 0.0, 8, 1e-3)
    assert runs.settings(tiny_config(), "rotation", "rsteer")[1]["hidden"] == 2  # override wins


def test_jobs_get_only_the_window_keys_they_read():
    cfg = pipeline_config.load(CONFIG)
    train = runs.train_params(cfg, "rotation", "rsteer", alpha=1e-2)
    assert set(train["windows"]) == {"offset", "input_length", "train", "valid"}
    assert train["model"]["alpha"] == 1e-2 and train["training"]["out_length"] == 6
    evaluate = runs.evaluate_params(cfg, "equivariance_3")
    assert set(evaluate["windows"]) == {"offset", "input_length", "rollout", "valid"}  # no test splits here
    assert set(runs.evaluate_params(cfg, "rotation")["windows"]) == set(runs.EVALUATE_WINDOW_KEYS)
    assert evaluate["correlation_thresholds"] == cfg["evaluation"]["correlation_thresholds"] == [0.8, 0.9, 0.95]
    cfg["evaluation"]["correlation_thresholds"] = [0.5]
    assert runs.evaluate_params(cfg, "rotation")["correlation_thresholds"] == [0.5]
