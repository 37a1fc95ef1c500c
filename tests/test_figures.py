"""Figures from small synthetic tables, datasets and models; one single-target regeneration through Snakemake."""
from __future__ import annotations

import os

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
import torch

from helpers import CONFIG, TINY, config, snakemake
from pipeline import figures
from pipeline.heat import rotation_asymmetry, simulate

DPI = 50


def _png(path, width_in, height_in, dpi=DPI):
    image = mpimg.imread(path)
    h, w = image.shape[:2]
    assert abs(h - height_in * dpi) <= 1 and abs(w - width_in * dpi) <= 1, (h, w)
    assert image.std() > 0, f"{path} is blank"
    return image


def _rollout_table(models=("conv", "rgroup", "mlp"), steps=4):
    rows = [dict(model=m, split=s, step=k, rmse_mean=0.1 * (i + 1) * k, rmse_std=0.01)
            for i, m in enumerate(models) for s in ("test_future", "test_domain") for k in range(1, steps + 1)]
    return pd.DataFrame(rows)


# --- styles ---------------------------------------------------------------------------------------------

def test_every_registered_model_has_one_distinct_style():
    from pipeline import display
    from pipeline.models import names
    registered = set(names("translation")) | set(names("rotation"))
    assert registered <= set(figures.MODEL_STYLES) and registered <= set(display.NAMES)
    labels = list(display.NAMES.values())
    colours = [s[0] for s in figures.MODEL_STYLES.values()]
    assert len(set(labels)) == len(labels) and len(set(colours)) == len(colours)
    assert figures.model_label("equiv", "rotation") == "E2CNN"
    assert figures.model_label("equiv", "equivariance_3") == "E2CNN"
    assert figures.model_label("equiv", "scaling") == "SESN"
    assert figures.model_label("rsteer_tr") == "RSteer-TR"
    assert figures.model_label("newnet") == "newnet" and figures.model_color("newnet").startswith("#")
    assert figures.model_label("newnet", "rotation", own={"newnet": "NewNet"}) == "NewNet"  # config['custom_models']
    assert figures.model_order(["rsteer", "zz", "mlp", "conv"]) == ["mlp", "conv", "rsteer", "zz"]


def test_figure_steps_keep_what_the_rollout_reaches():
    assert figures.figure_steps([1, 5, 10, 20], 20) == [1, 5, 10, 20]
    assert figures.figure_steps([1, 5, 10, 20], 4) == [1, 4]
    assert figures.figure_steps([20], 3) == [3]


# --- table figures ------------------------------------------------------------------------------------------

def test_rollout_figure(tmp_path):
    table = tmp_path / "rollout_rotation.csv"
    _rollout_table().to_csv(table, index=False)
    fig = figures.plot_rollout(pd.read_csv(table), "rotation")
    axes = fig.axes
    assert len(axes) == 2
    assert [a.get_title() for a in axes] == ["Rotation: test-future", "Rotation: test-domain"]
    for ax in axes:
        assert len(ax.get_lines()) == 3
        assert "RMSE" in axes[0].get_ylabel() and "step" in ax.get_xlabel()
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["MLP", "Conv", "RGroup"]
    out = tmp_path / "rollout_rotation.png"
    figures.rollout_figure(str(table), "rotation", str(out), dpi=DPI)
    _png(out, figures.PAGE, 2.5)


def test_equivariance_figure(tmp_path):
    rows = [dict(level=n, data_equivariance_error=0.1 * n, model=m, equivariance_error_mean=f * 0.1 * n,
                 equivariance_error_std=0.01, n_seeds=3)
            for n in range(3) for m, f in (("conv", 0.5), ("equiv", 0.0), ("rsteer", 0.9))]
    table = tmp_path / "equivariance.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    fig = figures.plot_equivariance(pd.read_csv(table))
    (ax,) = fig.axes
    assert len(ax.containers) == 3                                   # one error-bar series per model
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["Model = data", "Conv", "E2CNN", "RSteer"]
    out = tmp_path / "fig4.png"
    figures.equivariance_figure(str(table), str(out), dpi=DPI)
    _png(out, figures.COLUMN, 2.8)


def test_alpha_figure_shows_alpha_zero_apart(tmp_path):
    rows = [dict(alpha=a, split=s, rmse_mean=0.7 + a * 10 + (0.05 if s == "test_domain" else 0), rmse_std=0.02,
                 n_seeds=3)
            for a in (0.0, 1e-6, 1e-4, 1e-2) for s in ("test_future", "test_domain")]
    table = tmp_path / "alpha_sweep.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    fig = figures.plot_alpha(pd.read_csv(table))
    (ax,) = fig.axes
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()][0] == "0"
    assert len(ax.get_xticks()) == 4
    assert len(ax.containers) == 4                                   # positive alphas and alpha = 0, per split
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["Test-future", "Test-domain"]
    out = tmp_path / "fig7.png"
    figures.alpha_figure(str(table), str(out), dpi=DPI)
    _png(out, figures.COLUMN, 2.4)


# --- Figure 2 ---------------------------------------------------------------------------------------------------

def test_heat_diffusion_symmetry_and_figure(tmp_path):
    r = simulate(grid=16, blob_radius=2.0, dt=2.0, times=(0, 4, 8), variation=0.3)
    assert r.uniform.shape == r.varying.shape == (3, 16, 16)
    assert r.uniform.dtype == np.float64
    assert rotation_asymmetry(r.uniform[-1]) < 1e-6                  # uniform plate: exact C4 symmetry
    assert rotation_asymmetry(r.varying[-1]) > 1e-3                  # varying plate: broken, slightly
    np.testing.assert_allclose(r.varying.sum(axis=(1, 2)), r.varying[0].sum(), rtol=1e-6)   # insulated: heat conserved
    assert np.all(np.diff(r.uniform.max(axis=(1, 2))) < 0)
    fig = figures.plot_heat(r)
    assert len(fig.axes) == 2 * (3 + 2) + 3  # 2 rows x (kappa, 3 times, difference) + 3 colour bars
    out = tmp_path / "fig2.png"
    figures.save(fig, out, dpi=DPI)
    _png(out, figures.PAGE, 2.2)


# --- Figure 3 ---------------------------------------------------------------------------------------------------

@pytest.fixture
def tiny_runs(tmp_path):
    """A 16x16 translation-like dataset (2 train sims, 1 held out) and conv / rgroup models in the model.pt format."""
    from pipeline.datasets import write_store
    from pipeline.models import build

    rng = np.random.default_rng(0)
    velocity = rng.normal(size=(3, 14, 2, 16, 16)).astype(np.float32)
    store = tmp_path / "data" / "translation.zarr"
    write_store(store, velocity, {"dataset": "translation", "family": "translation",
                                  "sims": [{"role": "train"}, {"role": "test_domain"}, {"role": "train"}]},
                chunk_frames=8)
    windows = {"offset": 1, "input_length": 3, "rollout": 6, "train": [0, 2], "valid": [2, 3],
               "test_future": [3, 4], "test_domain": [0, 4]}
    hp = {"conv": dict(in_frames=3, hidden=2, layers=2, kernel_size=3),
          "rgroup": dict(in_frames=3, frame_size=[16, 16], hidden=2, layers=2, kernel_size=3)}
    for name, h in hp.items():
        model = build(name, "translation", **h)
        path = tmp_path / "runs" / "translation" / name / "seed0" / "model.pt"
        path.parent.mkdir(parents=True)
        torch.save({"name": name, "symmetry": "translation", "dataset": "translation", "seed": 0,
                    "hyperparameters": h, "state_dict": model.state_dict()}, path)
    rows = [dict(dataset="translation", model=m, split=s, rmse_mean=v + (0.1 if s == "test_future" else 0),
                 rmse_std=0.01, n_seeds=1, paper_mean=np.nan, paper_std=np.nan)
            for m, v in (("conv", 0.5), ("rgroup", 0.4), ("mlp", 0.9), ("rsteer", 1.5))
            for s in ("test_future", "test_domain")]
    rows.append(dict(dataset="rotation", model="mlp", split="test_domain", rmse_mean=0.1, rmse_std=0.0, n_seeds=1,
                     paper_mean=np.nan, paper_std=np.nan))
    table1 = tmp_path / "table1.csv"
    pd.DataFrame(rows).to_csv(table1, index=False)
    return tmp_path, store, windows, table1


def test_choose_models_best_relaxed_then_best_baselines(tiny_runs):
    _, _, _, table1 = tiny_runs
    t = pd.read_csv(table1)
    assert figures.choose_models(t, "translation", baselines=2) == ["rgroup", "conv", "mlp"]
    assert figures.choose_models(t, "translation", baselines=1) == ["rgroup", "conv"]
    assert figures.choose_models(t, "translation", models=["mlp"]) == ["mlp"]
    with pytest.raises(ValueError, match="no test_domain rows"):
        figures.choose_models(t, "scaling")


def test_predictions_figure(tiny_runs):
    tmp, store, windows, table1 = tiny_runs
    png, pdf = tmp / "fig" / "fig3_translation.png", tmp / "fig" / "fig3_translation.pdf"
    shown = figures.predictions_figure("translation", str(store), windows, str(table1), str(tmp / "runs"), str(png),
                                       str(pdf), sample=2, seed=0, steps=[1, 5, 10, 20], baselines=1, dpi=DPI)
    assert shown == ["rgroup", "conv"]
    assert pdf.stat().st_size > 0 and pdf.read_bytes()[:4] == b"%PDF"
    steps = figures.figure_steps([1, 5, 10, 20], windows["rollout"])
    assert steps == [1, 5, 6]
    _png(png, figures.PAGE * (len(steps) + 1.2) / 5.2, 1.35 * 3 + 0.35)          # 3 rows: target and 2 models
    # the plotting function itself: (1 + models) rows by steps columns of images, plus a colour bar
    target = np.random.default_rng(1).normal(size=(6, 2, 16, 16))
    fig = figures.plot_predictions(target, {"rgroup": target, "conv": 2 * target}, steps, "translation",
                                   {"conv": "0.50 ± 0.01"})
    panels = [ax for ax in fig.axes if ax.get_images() and ax.get_label() != "<colorbar>"]
    assert len(panels) == 3 * 3
    assert [ax.get_ylabel() for ax in fig.axes[:9:3]] == ["Target", "RGroup", "Conv\n0.50 ± 0.01"]
    with pytest.raises(FileNotFoundError, match="no trained model"):
        figures.predictions_figure("translation", str(store), windows, str(table1), str(tmp / "runs"), str(png),
                                   models=["mlp"], dpi=DPI)
    with pytest.raises(IndexError, match="out of range"):
        figures.predictions_figure("translation", str(store), windows, str(table1), str(tmp / "runs"), str(png),
                                   sample=4, dpi=DPI)


# --- single-target regeneration -------------------------------------------------------------------------------

def test_snakemake_regenerates_fig2_alone(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = snakemake(["results/figures/fig2_heat.png"], tmp_path, [CONFIG, TINY], cores=1, env=env, timeout=300)
    out = tmp_path / "results" / "figures" / "fig2_heat.png"
    _png(out, figures.PAGE, 2.2, dpi=100)                            # presets/tiny.yaml: figures.dpi 100
    assert "figure_heat" in done.stderr and "1 of 1 steps" in done.stderr
    assert not (tmp_path / "results" / "data").exists()              # nothing upstream was run


@pytest.mark.parametrize("preset", [None, "quick", "tiny"])
def test_figures_config_validates(preset):
    from pipeline import config as pipeline_config
    cfg = config(preset)
    pipeline_config.validate(cfg)
    fig3 = cfg["figures"]["fig3"]
    assert fig3["seed"] in cfg["seeds"]
    assert set(fig3["datasets"]) <= {"translation", "rotation", "scaling"}
    bad = dict(cfg, figures=dict(cfg["figures"], heat=dict(cfg["figures"]["heat"], variation=1.5)))
    with pytest.raises(pipeline_config.ConfigError, match="variation"):
        pipeline_config.validate(bad)


# --- benchmark metrics and symmetry breaking -----------------------------------------------------------------

def _long_table(models=("conv", "rsteer"), steps=6, seeds=(0, 1)):
    rows = [dict(dataset=d, model=m, seed=s, split=sp, step=k, rmse=0.1 * k, correlation=1.0 - (i + 1) * 0.045 * k)
            for d in ("rotation", "scaling") for i, m in enumerate(models) for s in seeds
            for sp in ("valid", "test_future", "test_domain") for k in range(1, steps + 1)]
    return pd.DataFrame(rows)


def test_correlation_figure(tmp_path):
    table = tmp_path / "metrics_long.csv"
    df = _long_table()
    domain_conv = (df["split"] == "test_domain") & (df["model"] == "conv")
    df.loc[domain_conv, "correlation"] = 1.0 - 0.09 * df.loc[domain_conv, "step"]  # conv falls faster in the domain
    df.to_csv(table, index=False)
    fig = figures.plot_correlation(pd.read_csv(table), "rotation")  # PDEArena's thresholds 0.8, 0.9, 0.95
    assert [a.get_title() for a in fig.axes] == ["Rotation: test-future", "Rotation: test-domain"]
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 5  # two models and the three thresholds, dotted
    assert ([(ln.get_ydata()[0], ln.get_linestyle()) for ln in ax.get_lines()[2:]]
            == [(0.8, ":"), (0.9, ":"), (0.95, ":")])
    # one legend beside the panels, none over them; it gives the first threshold's time in each split, in the
    # panels' order: conv drops 0.045 a step in the future: 0.82 at step 4, 0.775 at 5 -> 4; 0.09 a step in the
    # domain: 0.82 at step 2, 0.73 at 3 -> 2; rsteer drops 0.09 a step in both -> 2
    assert all(a.get_legend() is None for a in fig.axes) and len(fig.legends) == 1
    legend = fig.legends[0]
    assert legend.get_title().get_text() == "Model (correlation time > 0.8,\ntest-future / test-domain)"
    assert [t.get_text() for t in legend.get_texts()] == ["Conv (4.0 / 2.0)", "RSteer (2.0 / 2.0)"]
    # first threshold 0.9: conv 0.955, 0.91 above, 0.865 not -> 2 (domain: 0.91 above, 0.82 not -> 1); rsteer -> 1
    fig = figures.plot_correlation(pd.read_csv(table), "rotation", thresholds=[0.9])
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["Conv (2.0 / 1.0)", "RSteer (1.0 / 1.0)"]
    assert len(fig.axes[0].get_lines()) == 3
    assert fig.legends[0].get_title().get_text().startswith("Model (correlation time > 0.9,")
    # a model missing from a split has "-" there
    only_future = pd.read_csv(table)
    only_future = only_future[~((only_future["model"] == "rsteer") & (only_future["split"] == "test_domain"))]
    fig = figures.plot_correlation(only_future, "rotation")
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["Conv (4.0 / 2.0)", "RSteer (2.0 / -)"]
    with pytest.raises(ValueError, match="no correlation thresholds"):
        figures.plot_correlation(pd.read_csv(table), "rotation", thresholds=[])
    out = tmp_path / "correlation_rotation.png"
    figures.correlation_figure(str(table), "rotation", str(out), dpi=DPI)
    _png(out, figures.PAGE, 2.5)
    with pytest.raises(ValueError, match="long metrics table of translation: no rows"):
        figures.plot_correlation(pd.read_csv(table), "translation")


def _symmetry_breaking_table():
    rows = []
    for model, layers in (("rgroup", ["conv1", "conv2", "projection"]), ("rsteer", ["conv0", "conv1"])):
        for dataset, level in [(f"equivariance_{n}", n) for n in range(4)] + [("rotation", float("nan"))]:
            for seed in (0, 1):
                for j, layer in enumerate(layers):
                    # every layer departs more with the level, but RGroup's projection, which departs less
                    falls = model == "rgroup" and layer == "projection" and level == level
                    per = [0.01 * ((4 - level) if falls else (level if level == level else 1)) * (1 + j)] * 4
                    if dataset == "rotation":
                        per[2] *= 3
                    rows.append(dict(dataset=dataset, level=level, data_equivariance_error=0.1 * level, model=model,
                                     seed=seed, layer=layer, element="all", departure=sum(v * v for v in per) ** 0.5,
                                     signed=0.0))
                    rows += [dict(dataset=dataset, level=level, data_equivariance_error=0.1 * level, model=model,
                                  seed=seed, layer=layer, element=str(h), departure=per[h],
                                  signed=0.0) for h in range(4)]
    return pd.DataFrame(rows)


def test_symmetry_breaking_figures(tmp_path):
    table = tmp_path / "symmetry_breaking.csv"
    _symmetry_breaking_table().to_csv(table, index=False)
    df = pd.read_csv(table)
    fig = figures.plot_symmetry_breaking(df)
    assert [a.get_title() for a in fig.axes] == ["RGroup", "RSteer"]
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["conv1 (ρ = 1.00)", "conv2 (ρ = 1.00)", "projection (ρ = -1.00)"]
    assert len(fig.axes[1].get_legend().get_texts()) == 2

    fig = figures.plot_symmetry_breaking_rotation(df)
    assert [a.get_title() for a in fig.axes] == ["RGroup: rotation family", "RSteer: rotation family"]
    bars = fig.axes[0].patches
    assert len(bars) == 4 * 3  # four elements for each of three layers
    heights = np.array([b.get_height() for b in bars]).reshape(4, 3)  # drawn element by element
    assert (heights[2] > heights[[0, 1, 3]]).all()
    assert [t.get_text() for t in fig.legends[0].get_texts()] == list(figures.ROTATION_ELEMENTS)

    for fn, name in ((figures.symmetry_breaking_figure, "sb.png"),
                     (figures.symmetry_breaking_rotation_figure, "sb_rotation.png")):
        fn(str(table), str(tmp_path / name), dpi=DPI)
        _png(tmp_path / name, figures.PAGE, 2.6)


def test_persistence_is_a_dotted_black_line_of_the_rollout_and_correlation_figures(tmp_path):
    fig = figures.plot_rollout(_rollout_table(("conv", "persistence")), "rotation")
    for ax in fig.axes:
        line = [ln for ln in ax.get_lines() if ln.get_label() == "Persistence"]
        assert len(line) == 1 and line[0].get_linestyle() == ":" and line[0].get_color() == "#000000"
        np.testing.assert_allclose(line[0].get_ydata(), [0.2, 0.4, 0.6, 0.8])
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["Persistence", "Conv"]
    # persistence has no seed (empty in the long table); its correlation 0.85, 0.70, ... -> correlation time 1
    persistence = [dict(dataset="rotation", model="persistence", seed=None, split=sp, step=k, rmse=0.2 * k,
                        correlation=1.0 - 0.15 * k)
            for sp in ("valid", "test_future", "test_domain") for k in range(1, 7)]
    table = tmp_path / "metrics_long.csv"
    pd.concat([_long_table(), pd.DataFrame(persistence)]).to_csv(table, index=False)
    fig = figures.plot_correlation(pd.read_csv(table), "rotation", thresholds=[0.8])
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert texts[0] == "Persistence (1.0 / 1.0)" and len(texts) == 3
    assert fig.axes[0].get_lines()[0].get_linestyle() == ":"


def test_figure_3_never_picks_persistence():
    t = pd.DataFrame([dict(dataset="translation", model=m, split="test_domain", rmse_mean=v)
                      for m, v in (("persistence", 0.1), ("conv", 0.5), ("mlp", 0.9), ("rgroup", 0.4))])
    assert figures.choose_models(t, "translation", baselines=2) == ["rgroup", "conv", "mlp"]


def test_ace_gamma_figure_beside_the_relaxed_kernels(tmp_path):
    rows = []
    for level in range(4):
        for seed in (0, 1):   # layer1 rises with the data error, layer2 falls; seed 1 adds 0.2 to layer1
            rows += [dict(dataset=f"equivariance_{level}", level=level, data_equivariance_error=0.1 * level,
                          model="ace", seed=seed, layer="layer1", gamma=-(0.1 * level + 0.2 * seed),
                          abs_gamma=0.1 * level + 0.2 * seed, slack=0.0, multiplier=0.0),
                     dict(dataset=f"equivariance_{level}", level=level, data_equivariance_error=0.1 * level,
                          model="ace", seed=seed, layer="layer2", gamma=1.0 - 0.1 * level,
                          abs_gamma=1.0 - 0.1 * level, slack=0.0, multiplier=0.0)]
    rows.append(dict(dataset="rotation", level=np.nan, data_equivariance_error=np.nan, model="ace", seed=0,
                     layer="layer1", gamma=9.0, abs_gamma=9.0, slack=0.0, multiplier=0.0))  # not a level: left out
    gamma = tmp_path / "ace_gamma.csv"
    pd.DataFrame(rows).to_csv(gamma, index=False)
    departure = tmp_path / "symmetry_breaking.csv"
    _symmetry_breaking_table().to_csv(departure, index=False)

    fig = figures.plot_ace_gamma(pd.read_csv(gamma), pd.read_csv(departure))
    assert [a.get_title() for a in fig.axes] == ["ACE", "RGroup", "RSteer"]
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["layer1 (ρ = 1.00)", "layer2 (ρ = -1.00)"]
    line = fig.axes[0].get_lines()[0]   # layer1: the mean over the two seeds at each level
    x, y = (np.asarray(v, dtype=float) for v in (line.get_xdata(), line.get_ydata()))
    assert np.allclose(x, [0.0, 0.1, 0.2, 0.3]) and np.allclose(y, [0.1, 0.2, 0.3, 0.4])
    assert fig.axes[0].get_ylabel() == "Learned |γ_i|"
    assert [t.get_text() for t in fig.axes[1].get_legend().get_texts()] == \
        [t.get_text() for t in figures.plot_symmetry_breaking(pd.read_csv(departure)).axes[0].get_legend().get_texts()]
    assert [a.get_title() for a in figures.plot_ace_gamma(pd.read_csv(gamma)).axes] == ["ACE"]

    figures.ace_gamma_figure(str(gamma), str(tmp_path / "ace_gamma.png"), departure_table=str(departure), dpi=DPI)
    _png(tmp_path / "ace_gamma.png", figures.PAGE, 2.6)
    with pytest.raises(ValueError, match="ACE gamma table of the equivariance levels"):
        figures.plot_ace_gamma(pd.read_csv(gamma).query("dataset == 'rotation'"))
