# Beyond one RMSE (issue 13): every run's per-step benchmark metrics in long format, Table 1's VRMSE view, the
# correlation over the rollout per family, the symmetry breaking measured on the relaxed models' kernels, and ACE's
# learned gamma_i per layer against the levels' data equivariance error beside it.
# Reads config and names only (pipeline/metrics.py, tables.py, figures.py and symmetry_breaking.py do the work).

from pipeline.models import GAMMA_MODELS  # ACE: a learned gamma_i per layer (pipeline/symmetry_breaking.py)
from pipeline.models import RELAXED_C4  # the models whose relaxed layers pipeline/symmetry_breaking.py measures

SB_LEVEL_MODELS = [m for m in RELAXED_C4 if m in config["models"]["equivariance"]]
SB_ROTATION_MODELS = [m for m in RELAXED_C4 if m in config["models"]["rotation"]]
SB_RUNS = [RUN.format(dataset=d, model=m, seed=s) for d in LEVEL_DATASETS for m in SB_LEVEL_MODELS for s in SEEDS] + [
    RUN.format(dataset="rotation", model=m, seed=s) for m in SB_ROTATION_MODELS for s in SEEDS
]
GAMMA_LEVEL_MODELS = [m for m in GAMMA_MODELS if m in config["models"]["equivariance"]]
GAMMA_RUNS = [RUN.format(dataset=d, model=m, seed=s) for d in LEVEL_DATASETS for m in GAMMA_LEVEL_MODELS for s in SEEDS]
ANALYSIS = (
    ["results/tables/metrics_long.csv"]
    + (expand("results/tables/table1_vrmse.{ext}", ext=["csv", "md"]) if config.get("tables", {}).get("vrmse") else [])
    + expand("results/figures/correlation_{dataset}.png", dataset=TRAINED_FAMILIES)
    + (["results/tables/symmetry_breaking.csv"] if SB_RUNS else [])
    + (["results/figures/symmetry_breaking.png"] if SB_LEVEL_MODELS else [])
    + (["results/figures/symmetry_breaking_rotation.png"] if SB_ROTATION_MODELS else [])
    + (["results/tables/ace_gamma.csv", "results/figures/ace_gamma.png"] if GAMMA_RUNS else [])
)


rule metrics_long_table:
    input:
        run_metrics(DATASETS) + persistence_metrics(FAMILY_DATASETS + EXTERNAL_DATASETS),
    output:
        report("results/tables/metrics_long.csv", caption="../report/metrics_long.rst", category="Tables"),
    log:
        "results/logs/tables/metrics_long.log",
    conda:
        "../../envs/training.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        kind="metrics_long",
    script:
        "../scripts/tables.py"


rule table1_vrmse:
    input:
        run_metrics(FAMILY_DATASETS) + persistence_metrics(FAMILY_DATASETS),
    output:
        csv=report("results/tables/table1_vrmse.csv", caption="../report/table1_vrmse.rst", category="Tables"),
        md=report("results/tables/table1_vrmse.md", caption="../report/table1_vrmse.rst", category="Tables"),
    log:
        "results/logs/tables/table1_vrmse.log",
    conda:
        "../../envs/training.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        kind="table1_vrmse",
        own=OWN_NAMES,
    script:
        "../scripts/tables.py"


rule figure_correlation:
    input:
        "results/tables/metrics_long.csv",
    output:
        report(
            "results/figures/correlation_{dataset}.png",
            caption="../report/correlation.rst",
            category="Figures",
            subcategory="Correlation over the rollout",
        ),
    log:
        "results/logs/figures/correlation_{dataset}.log",
    wildcard_constraints:
        dataset="|".join(FAMILY_DATASETS),
    conda:
        "../../envs/figures.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        thresholds=runs.correlation_thresholds(config),
        dpi=FIGURES_CFG["dpi"],
        own=OWN_NAMES,
    script:
        "../scripts/figure_correlation.py"


rule symmetry_breaking_table:
    input:
        models=[f"{run}/model.pt" for run in SB_RUNS],
        metrics=[f"{run}/metrics.json" for run in SB_RUNS],
    output:
        report(
            "results/tables/symmetry_breaking.csv", caption="../report/symmetry_breaking_table.rst", category="Tables"
        ),
    log:
        "results/logs/tables/symmetry_breaking.log",
    conda:
        "../../envs/training.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    script:
        "../scripts/symmetry_breaking.py"


rule figure_symmetry_breaking:
    input:
        "results/tables/symmetry_breaking.csv",
    output:
        report("results/figures/symmetry_breaking.png", caption="../report/symmetry_breaking.rst", category="Figures"),
    log:
        "results/logs/figures/symmetry_breaking.log",
    conda:
        "../../envs/figures.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        per_element=False,
        dpi=FIGURES_CFG["dpi"],
    script:
        "../scripts/figure_symmetry_breaking.py"


use rule figure_symmetry_breaking as figure_symmetry_breaking_rotation with:
    output:
        report(
            "results/figures/symmetry_breaking_rotation.png",
            caption="../report/symmetry_breaking_rotation.rst",
            category="Figures",
        ),
    log:
        "results/logs/figures/symmetry_breaking_rotation.log",
    params:
        per_element=True,
        dpi=FIGURES_CFG["dpi"],


rule ace_gamma_table:
    input:
        [f"{run}/metrics.json" for run in GAMMA_RUNS],
    output:
        report("results/tables/ace_gamma.csv", caption="../report/ace_gamma_table.rst", category="Tables"),
    log:
        "results/logs/tables/ace_gamma.log",
    conda:
        "../../envs/training.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    script:
        "../scripts/ace_gamma.py"


rule figure_ace_gamma:
    # fmt: off
    # snakefmt would move the ** entry before gamma, changing the order of the job's inputs
    input:
        gamma="results/tables/ace_gamma.csv",
        **({"departure": "results/tables/symmetry_breaking.csv"} if SB_LEVEL_MODELS else {}),
    # fmt: on
    output:
        report("results/figures/ace_gamma.png", caption="../report/ace_gamma.rst", category="Figures"),
    log:
        "results/logs/figures/ace_gamma.log",
    conda:
        "../../envs/figures.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        dpi=FIGURES_CFG["dpi"],
    script:
        "../scripts/figure_ace_gamma.py"


rule analysis:
    input:
        ANALYSIS,
