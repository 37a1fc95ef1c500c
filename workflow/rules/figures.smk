# Figures (pipeline/figures.py): the paper's Figures 2, 3, 4 and 7 and the per-step rollout errors, each a single
# Snakemake target, e.g.  snakemake --cores 1 results/figures/fig2_heat.png
FIGURES_CFG = config["figures"]
FIG3_CFG = FIGURES_CFG["fig3"]
if FIG3_CFG["seed"] not in config["seeds"]:
    raise ValueError(f"config['figures']['fig3']['seed']: {FIG3_CFG['seed']} is not one of config['seeds'] {config['seeds']}")
for _dataset, _models in FIG3_CFG["models"].items():
    _unknown = sorted(set(_models) - set(config["models"][_dataset]))
    if _unknown:
        raise ValueError(f"config['figures']['fig3']['models'][{_dataset!r}]: {_unknown} are not trained "
                         f"(config['models'][{_dataset!r}] = {config['models'][_dataset]})")

# Families that train at least one model get a rollout figure and (when listed) a Figure 3.
TRAINED_FAMILIES = [f for f in FAMILY_DATASETS if config["models"][f]]
FIG3_DATASETS = [d for d in FIG3_CFG["datasets"] if d in TRAINED_FAMILIES]
FIGURES = (
    ["results/figures/fig2_heat.png"]
    + expand("results/figures/fig3_{dataset}.{ext}", dataset=FIG3_DATASETS, ext=["png", "pdf"])
    + expand("results/figures/rollout_{dataset}.png", dataset=TRAINED_FAMILIES)
    + (["results/figures/fig4_equivariance.png"] if config["models"]["equivariance"] else [])
    + (["results/figures/fig7_alpha.png"] if config["alpha_sweep"]["values"] else [])
)


def fig3_models(wildcards):
    """Every model Figure 3 may show: the configured list, else every model trained on the dataset (table1
    picks among them), at the configured seed."""
    models = FIG3_CFG["models"].get(wildcards.dataset) or config["models"][wildcards.dataset]
    return expand("results/runs/{dataset}/{model}/seed{seed}/model.pt", dataset=wildcards.dataset, model=models,
                  seed=FIG3_CFG["seed"])


rule figure_heat:
    output:
        report("results/figures/fig2_heat.png", caption="../report/fig2_heat.rst", category="Figures"),
    params:
        heat=FIGURES_CFG["heat"],
        dpi=FIGURES_CFG["dpi"],
    log:
        "results/logs/figures/fig2_heat.log",
    conda:
        "../../envs/figures.yaml"
    script:
        "../scripts/figure_heat.py"


rule figure_predictions:
    input:
        table1="results/tables/table1.csv",
        store="results/data/{dataset}.zarr",
        models=fig3_models,
    output:
        png=report("results/figures/fig3_{dataset}.png", caption="../report/fig3_predictions.rst", category="Figures",
                   subcategory="Figure 3: predictions"),
        pdf="results/figures/fig3_{dataset}.pdf",
    wildcard_constraints:
        dataset="translation|rotation|scaling",
    params:
        fig3=FIG3_CFG,
        windows=lambda wc: config["windows"][wc.dataset],
        runs="results/runs",
        dpi=FIGURES_CFG["dpi"],
    log:
        "results/logs/figures/fig3_{dataset}.log",
    conda:
        "../../envs/figures.yaml"
    script:
        "../scripts/figure_predictions.py"


rule figure_rollout:
    input:
        "results/tables/rollout_{dataset}.csv",
    output:
        report("results/figures/rollout_{dataset}.png", caption="../report/rollout_figure.rst", category="Figures",
               subcategory="Rollout RMSE per step"),
    wildcard_constraints:
        dataset="translation|rotation|scaling",
    params:
        dpi=FIGURES_CFG["dpi"],
    log:
        "results/logs/figures/rollout_{dataset}.log",
    conda:
        "../../envs/figures.yaml"
    script:
        "../scripts/figure_rollout.py"


rule figure_equivariance:
    input:
        "results/tables/equivariance.csv",
    output:
        report("results/figures/fig4_equivariance.png", caption="../report/fig4_equivariance.rst", category="Figures"),
    params:
        dpi=FIGURES_CFG["dpi"],
    log:
        "results/logs/figures/fig4_equivariance.log",
    conda:
        "../../envs/figures.yaml"
    script:
        "../scripts/figure_equivariance.py"


rule figure_alpha:
    input:
        "results/tables/alpha_sweep.csv",
    output:
        report("results/figures/fig7_alpha.png", caption="../report/fig7_alpha.rst", category="Figures"),
    params:
        model=config["alpha_sweep"]["model"],
        dataset=config["alpha_sweep"]["dataset"],
        dpi=FIGURES_CFG["dpi"],
    log:
        "results/logs/figures/fig7_alpha.log",
    conda:
        "../../envs/figures.yaml"
    script:
        "../scripts/figure_alpha.py"


rule figures:
    input:
        FIGURES,
