# Tables aggregated over seeds from the runs' metrics.json; each is a target of its own.


rule table1:
    input:
        run_metrics(FAMILY_DATASETS) + persistence_metrics(FAMILY_DATASETS),
    output:
        csv=report("results/tables/table1.csv", caption="../report/table1.rst", category="Tables"),
        md=report("results/tables/table1.md", caption="../report/table1.rst", category="Tables"),
        tex="results/tables/table1.tex",
    log:
        "results/logs/tables/table1.log",
    conda:
        "../../envs/training.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        kind="table1",
        own=OWN_NAMES,
    script:
        "../scripts/tables.py"


rule equivariance_models_table:
    input:
        run_metrics(LEVEL_DATASETS),
    output:
        report("results/tables/equivariance.csv", caption="../report/equivariance.rst", category="Tables"),
    log:
        "results/logs/tables/equivariance.log",
    conda:
        "../../envs/training.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        kind="equivariance",
    script:
        "../scripts/tables.py"


rule rollout_table:
    input:
        lambda wc: run_metrics([wc.dataset]) + persistence_metrics([wc.dataset]),
    output:
        report("results/tables/rollout_{dataset}.csv", caption="../report/rollout.rst", category="Tables"),
    log:
        "results/logs/tables/rollout_{dataset}.log",
    wildcard_constraints:
        dataset="|".join(FAMILY_DATASETS + EXTERNAL_DATASETS),
    conda:
        "../../envs/training.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        kind="rollout",
    script:
        "../scripts/tables.py"


rule alpha_sweep_table:
    input:
        SWEEP_METRICS,
    output:
        report("results/tables/alpha_sweep.csv", caption="../report/alpha_sweep.rst", category="Tables"),
    log:
        "results/logs/tables/alpha_sweep.log",
    conda:
        "../../envs/training.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        kind="alpha_sweep",
    script:
        "../scripts/tables.py"


rule models_table:
    output:
        report("results/tables/models.csv", caption="../report/models.rst", category="Tables"),
    log:
        "results/logs/tables/models.log",
    benchmark:
        "results/benchmarks/tables/models.tsv"
    conda:
        "../../envs/training.yaml"
    threads: RESOURCES["threads"]
    resources:
        mem_mb=RESOURCES["mem_mb"],
        runtime=120,
    params:
        table=runs.models_table_params(config),  # every configured run's settings and the frame size
    script:
        "../scripts/models_table.py"
