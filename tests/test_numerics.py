"""Precision and determinism settings: what they set in torch, that bf16 really autocasts the training forward
pass, and that the run records them (metrics.json)."""
from __future__ import annotations

import os

import pytest
import torch

from pipeline import evaluate, numerics, runs, train
from helpers import tiny_config, write_synthetic_store
from test_train import samples, settings


@pytest.fixture(autouse=True)
def _restore_numerics():
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
              torch.get_float32_matmul_precision(),
              torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
              os.environ.get("CUBLAS_WORKSPACE_CONFIG"))
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before[0], before[1]
    torch.set_float32_matmul_precision(before[2])
    torch.use_deterministic_algorithms(before[3], warn_only=before[4])
    if before[5] is None:
        os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


def test_fp32_turns_tf32_off_and_tf32_turns_it_on():
    torch.backends.cudnn.allow_tf32 = True  # torch's own default for cuDNN convolutions
    state = numerics.configure("fp32", deterministic=True)
    assert (state["cuda_matmul"], state["cudnn_conv"]) == ("ieee", "ieee")
    assert torch.backends.cudnn.conv.fp32_precision != "tf32" and torch.backends.cudnn.rnn.fp32_precision != "tf32"
    assert torch.backends.cuda.matmul.fp32_precision == "ieee" and not torch.backends.cudnn.benchmark
    state = numerics.configure("tf32", deterministic=True)
    assert (state["cuda_matmul"], state["cudnn_conv"]) == ("tf32", "tf32")
    assert torch.backends.cuda.matmul.fp32_precision == torch.backends.cudnn.conv.fp32_precision == "tf32"
    assert numerics.configure("bf16")["cudnn_conv"] == "ieee", "bf16 autocasts; what stays float32 is true float32"


@pytest.mark.parametrize("first", [None, "tf32", "ieee"])
def test_torch_getters_keep_working_after_every_mode(first):
    """torch raises RuntimeError from its legacy getters once its newer fp32_precision setters were used; every mode
    must leave all of them readable (``first``: a user's code had set the newer API before the job configured)."""
    if first is not None:
        torch.backends.cuda.matmul.fp32_precision = first
        torch.backends.cudnn.conv.fp32_precision = first
    for precision in (*numerics.PRECISIONS, "fp32"):
        numerics.configure(precision, deterministic=True)
        tf32 = precision == "tf32"
        assert torch.backends.cudnn.allow_tf32 is tf32, precision
        assert torch.backends.cuda.matmul.allow_tf32 is tf32, precision
        assert torch.get_float32_matmul_precision() == ("high" if tf32 else "highest"), precision
        with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):  # reads the settings to restore them
            assert torch.backends.cudnn.allow_tf32 is False
        assert torch.backends.cudnn.allow_tf32 is tf32, "cudnn.flags() restored the setting"
        assert torch.backends.cuda.matmul.fp32_precision == ("tf32" if tf32 else "ieee"), precision
        assert (torch.backends.cudnn.conv.fp32_precision == "tf32") is tf32, precision
        assert (torch.backends.cudnn.rnn.fp32_precision == "tf32") is tf32, precision


def test_deterministic_sets_algorithms_and_cublas_workspace():
    os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    state = numerics.configure("fp32", deterministic=True)
    assert state["deterministic_algorithms"] and torch.backends.cudnn.deterministic
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == numerics.CUBLAS_WORKSPACE
    assert not numerics.configure("fp32", deterministic=False)["deterministic_algorithms"]


def test_unknown_precision_is_refused_by_name():
    with pytest.raises(ValueError, match=r"one of fp32, tf32, bf16; got 'fp16'"):
        numerics.configure("fp16")
    cfg = tiny_config()
    cfg["training"]["defaults"]["precision"] = "fp16"
    from pipeline import config as pipeline_config
    with pytest.raises(pipeline_config.ConfigError, match=r"config\['training'\]\['defaults'\]\['precision'\]"):
        pipeline_config.validate(cfg)


def test_bf16_autocasts_the_training_forward_pass():
    conv = torch.nn.Conv2d(2, 2, 3)
    x = torch.randn(1, 2, 8, 8)
    with numerics.autocast("bf16", torch.device("cpu")):
        assert conv(x).dtype == torch.bfloat16
    with numerics.autocast("fp32", torch.device("cpu")):
        assert conv(x).dtype == torch.float32


def test_precision_changes_training_and_is_recorded(tmp_path):
    tr, va, _ = samples()

    def fit(precision):
        torch.manual_seed(0)
        from pipeline.models import build
        model = build("conv", "translation", in_frames=2, hidden=4, layers=2, kernel_size=3)
        return train.fit(model, tr, va, settings(epochs=2, precision=precision), seed=0, run="p", progress=False)

    fp32, again, bf16 = fit("fp32"), fit("fp32"), fit("bf16")
    assert fp32.history[-1]["valid_rmse"] == again.history[-1]["valid_rmse"]
    assert bf16.history[-1]["valid_rmse"] != fp32.history[-1]["valid_rmse"], "bf16 autocast had no effect"
    assert abs(bf16.history[-1]["valid_rmse"] - fp32.history[-1]["valid_rmse"]) < 0.05 * fp32.history[-1]["valid_rmse"]

    cfg = tiny_config(epochs=1, precision="bf16")
    store = write_synthetic_store(tmp_path / "translation.zarr")
    params = runs.train_params(cfg, "translation", "conv")
    assert params["training"]["precision"] == "bf16", "the rule's params carry the precision (a change reruns)"
    train.train_run(params, "translation", store, "conv", 0, str(tmp_path / "run"), progress=False)
    m = evaluate.evaluate_run(runs.evaluate_params(cfg, "translation"), "translation", store,
                              str(tmp_path / "run" / "model.pt"), str(tmp_path / "m.json"))
    assert (m["training_precision"], m["training_deterministic"]) == ("bf16", True)
    assert m["evaluation_numerics"]["cudnn_conv"] == "ieee" and m["evaluation_numerics"]["deterministic_algorithms"]


def test_deterministic_flag_without_importing_inductor():
    """A job that never compiles sets the deterministic flag (warn-only) without loading torch._inductor (~2 s of
    every job's start); in a process where inductor is loaded, its copy of the flag follows too."""
    import subprocess
    import sys
    code = ("import sys, torch; from pipeline import numerics; numerics.configure('fp32', True); "
            "print(torch.are_deterministic_algorithms_enabled(), "
            "torch.is_deterministic_algorithms_warn_only_enabled(), "
            "'torch._inductor' in sys.modules)")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True", "False"]
    import torch._inductor.config as inductor_config
    numerics.configure("fp32", deterministic=True)
    assert inductor_config.deterministic is True and torch.is_deterministic_algorithms_warn_only_enabled()
    numerics.configure("fp32", deterministic=False)
    assert inductor_config.deterministic is False and not torch.are_deterministic_algorithms_enabled()
