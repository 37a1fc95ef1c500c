# Hyper-parameter search (pipeline/tuning.py, config.yaml: tuning): per tuned (dataset, model), a draw of the
# trials, one training job per trial (validation split only), and a selection, best.yaml, that the model's final
# runs read (common.smk: train_params). `snakemake tune_all` runs the search alone.
# Both the draw and the selection are checkpoints: their files are read when the DAG is built (common.smk:
# trial_params, train_params), so a trial or a final run reruns when its own settings change and only then (their
# inputs are ancient(): a rewritten file with the same settings reruns nothing).

checkpoint tune_draw:
    input:
        "results/data/{dataset}.zarr",
    output:
        f"{TUNE}/trials.yaml",
    params:
        run=lambda wc: runs.train_params(config, wc.dataset, wc.model),
        tuning={k: config["tuning"][k] for k in ("trials", "seed", "max_draws", "budget", "space")},
    wildcard_constraints:
        dataset="|".join(TUNED_FAMILIES),
    log:
        "results/logs/tune/{dataset}/{model}/draw.log",
    threads: 1
    resources:
        mem_mb=RESOURCES["mem_mb"],
        runtime=60,
    conda:
        "../../envs/training.yaml"
    script:
        "../scripts/tune_draw.py"


rule tune_trial:
    input:
        store="results/data/{dataset}.zarr",
        trials=trials_input,
    output:
        f"{TUNE}/trial{{trial}}/result.json",
    params:
        run=trial_params,
    wildcard_constraints:
        dataset="|".join(TUNED_FAMILIES),
    log:
        "results/logs/tune/{dataset}/{model}/trial{trial}.log",
    benchmark:
        "results/benchmarks/tune/{dataset}/{model}/trial{trial}.tsv"
    threads: RESOURCES["threads"]
    resources:
        mem_mb=grow(RESOURCES["mem_mb"]),
        runtime=grow(RESOURCES["runtime"]),
        gpu=RESOURCES["gpu"],
        cache_mb=CACHE_MB,
    conda:
        "../../envs/training.yaml"
    script:
        "../scripts/tune_trial.py"


checkpoint tune_select:
    input:
        lambda wc: expand(f"{TUNE}/trial{{trial}}/result.json", **wc, trial=TRIAL_INDICES),
    output:
        f"{TUNE}/best.yaml",
    wildcard_constraints:
        dataset="|".join(TUNED_FAMILIES),
    log:
        "results/logs/tune/{dataset}/{model}/select.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/training.yaml"
    script:
        "../scripts/tune_select.py"


rule tune_table:
    input:
        trials=[f"{TUNE}/trials.yaml".format(dataset=d, model=m) for d, m in TUNED],
        results=[f"{TUNE}/trial{t}/result.json".format(dataset=d, model=m, t=t) for d, m in TUNED for t in TRIAL_INDICES],
        selections=[f"{TUNE}/best.yaml".format(dataset=d, model=m) for d, m in TUNED],
    output:
        csv=report("results/tables/hyperparameters.csv", caption="../report/hyperparameters.rst", category="Tables"),
        png=report("results/figures/tuning.png", caption="../report/tuning.rst", category="Figures"),
    params:
        dpi=config["figures"]["dpi"],
        own=OWN_NAMES,
    log:
        "results/logs/tune/table.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../../envs/figures.yaml"
    script:
        "../scripts/tune_table.py"


rule tune_all:
    input:
        TUNING_OUTPUTS,
