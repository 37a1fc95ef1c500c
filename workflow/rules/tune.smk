# Hyper-parameter search (pipeline/tuning.py, config.yaml: tuning; docs/search.md): per tuned (dataset, model), a
# draw of the trials, the trials trained in rungs of successive halving (validation split only), and a selection,
# best.yaml, that the model's final runs read (common.smk: train_params). `snakemake tune_all` runs the search alone.
# A trial of rung r is one job (results/tuning/{dataset}/{model}/rung{r}/trial{t}); after each rung but the last a
# tune_promote checkpoint ranks its trials and names those that go on, which then resume from their checkpoint.pt
# of rung r (common.smk: rung_trials, previous_rung). The draw and the selection are checkpoints too: their files are
# read when the DAG is built (common.smk: trial_params, train_params), so a trial or a final run reruns when its own
# settings change and only then (their inputs are ancient(): a rewritten file with the same settings reruns nothing).


checkpoint tune_draw:
    input:
        "results/data/{dataset}.zarr",
    output:
        f"{TUNE}/trials.yaml",
    log:
        "results/logs/tune/{dataset}/{model}/draw.log",
    wildcard_constraints:
        dataset="|".join(FAMILY_DATASETS),
    conda:
        "../../envs/training.yaml"
    threads: 1
    resources:
        mem_mb=RESOURCES["mem_mb"],
        runtime=60,
    params:
        run=lambda wc: runs.train_params(config, wc.dataset, wc.model),
        tuning={k: config["tuning"][k] for k in ("trials", "seed", "max_draws", "budget", "space")},
    script:
        "../scripts/tune_draw.py"


rule tune_trial:
    input:
        unpack(previous_rung),
        store="results/data/{dataset}.zarr",
        trials=trials_input,
    output:
        result=f"{TRIAL}/result.json",
        checkpoint=f"{TRIAL}/checkpoint.pt",
    log:
        "results/logs/tune/{dataset}/{model}/rung{rung}/trial{trial}.log",
    benchmark:
        "results/benchmarks/tune/{dataset}/{model}/rung{rung}/trial{trial}.tsv"
    wildcard_constraints:
        dataset="|".join(FAMILY_DATASETS),
    conda:
        "../../envs/training.yaml"
    threads: RESOURCES["threads"]
    resources:
        mem_mb=grow(RESOURCES["mem_mb"]),
        runtime=grow(RESOURCES["runtime"]),
        gpu=RESOURCES["gpu"],
        cache_mb=CACHE_MB,
    params:
        run=trial_params,
    script:
        "../scripts/tune_trial.py"


checkpoint tune_promote:
    input:
        lambda wc: rung_results(wc.dataset, wc.model, int(wc.rung)),
    output:
        f"{TUNE}/rung{{rung}}/promoted.yaml",
    log:
        "results/logs/tune/{dataset}/{model}/rung{rung}/promote.log",
    wildcard_constraints:
        dataset="|".join(FAMILY_DATASETS),
        rung="|".join(str(r["rung"]) for r in RUNGS[:-1]) or "no_rung",
    conda:
        "../../envs/training.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        next_rung=lambda wc: RUNGS[int(wc.rung) + 1],
    script:
        "../scripts/tune_promote.py"


checkpoint tune_select:
    input:
        lambda wc: rung_results(wc.dataset, wc.model, LAST_RUNG),
    output:
        f"{TUNE}/best.yaml",
    log:
        "results/logs/tune/{dataset}/{model}/select.log",
    wildcard_constraints:
        dataset="|".join(FAMILY_DATASETS),
    conda:
        "../../envs/training.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/tune_select.py"


rule tune_table:
    input:
        trials=[f"{TUNE}/trials.yaml".format(dataset=d, model=m) for d, m in TUNED],
        results=table_results,
        selections=[f"{TUNE}/best.yaml".format(dataset=d, model=m) for d, m in TUNED],
    output:
        csv=report("results/tables/hyperparameters.csv", caption="../report/hyperparameters.rst", category="Tables"),
        png=report("results/figures/tuning.png", caption="../report/tuning.rst", category="Figures"),
    log:
        "results/logs/tune/table.log",
    conda:
        "../../envs/figures.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        dpi=config["figures"]["dpi"],
        own=OWN_NAMES,
    script:
        "../scripts/tune_table.py"


rule tune_all:
    input:
        TUNING_OUTPUTS,
