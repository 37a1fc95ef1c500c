# Figures (pipeline/figures.py): the paper's Figures 2, 3, 4 and 7 and the per-step rollout errors, each a single
# Snakemake target, e.g.  snakemake --cores 1 results/figures/fig2_heat.png


rule figure_heat:
    output:
        report("results/figures/fig2_heat.png", caption="../report/fig2_heat.rst", category="Figures"),
    log:
        "results/logs/figures/fig2_heat.log",
    conda:
        "../../envs/figures.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        heat=FIGURES_CFG["heat"],
        dpi=FIGURES_CFG["dpi"],
    script:
        "../scripts/figure_heat.py"


rule figure_predictions:
    input:
        # Table 1 chooses the models of the paper's datasets; an external dataset shows its configured models
        table1=lambda wc: [] if wc.dataset in EXTERNAL_DATASETS else "results/tables/table1.csv",
        store="results/data/{dataset}.zarr",
        models=fig3_models,
    output:
        png=report(
            "results/figures/fig3_{dataset}.png",
            caption="../report/fig3_predictions.rst",
            category="Figures",
            subcategory="Figure 3: predictions",
        ),
        pdf="results/figures/fig3_{dataset}.pdf",
    log:
        "results/logs/figures/fig3_{dataset}.log",
    wildcard_constraints:
        dataset="|".join(FAMILY_DATASETS + EXTERNAL_DATASETS),
    conda:
        "../../envs/figures.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        fig3=FIG3_CFG,
        models=lambda wc: fig3_model_list(wc.dataset),
        windows=lambda wc: config["windows"][wc.dataset],
        runs="results/runs",
        dpi=FIGURES_CFG["dpi"],
        own=OWN_NAMES,
    script:
        "../scripts/figure_predictions.py"


rule figure_rollout:
    input:
        "results/tables/rollout_{dataset}.csv",
    output:
        report(
            "results/figures/rollout_{dataset}.png",
            caption="../report/rollout_figure.rst",
            category="Figures",
            subcategory="Rollout RMSE per step",
        ),
    log:
        "results/logs/figures/rollout_{dataset}.log",
    wildcard_constraints:
        dataset="|".join(FAMILY_DATASETS + EXTERNAL_DATASETS),
    conda:
        "../../envs/figures.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        dpi=FIGURES_CFG["dpi"],
        own=OWN_NAMES,
    script:
        "../scripts/figure_rollout.py"


rule figure_equivariance:
    input:
        "results/tables/equivariance.csv",
    output:
        report("results/figures/fig4_equivariance.png", caption="../report/fig4_equivariance.rst", category="Figures"),
    log:
        "results/logs/figures/fig4_equivariance.log",
    conda:
        "../../envs/figures.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        dpi=FIGURES_CFG["dpi"],
        own=OWN_NAMES,
    script:
        "../scripts/figure_equivariance.py"


rule figure_alpha:
    input:
        "results/tables/alpha_sweep.csv",
    output:
        report("results/figures/fig7_alpha.png", caption="../report/fig7_alpha.rst", category="Figures"),
    log:
        "results/logs/figures/fig7_alpha.log",
    conda:
        "../../envs/figures.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        model=config["alpha_sweep"]["model"],
        dataset=config["alpha_sweep"]["dataset"],
        dpi=FIGURES_CFG["dpi"],
        own=OWN_NAMES,
    script:
        "../scripts/figure_alpha.py"


rule figures:
    input:
        FIGURES,
