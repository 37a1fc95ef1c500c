# Training (one job per dataset, model, seed) and evaluation of the trained model; the alpha sweep reuses both.
# Each job reads only its params (pipeline.runs), so a config edit reruns exactly the runs it changes.
# A killed, requeued or retried training job resumes from checkpoint.pt in its run folder (not an output, so
# Snakemake keeps it when it retries the job).

RESOURCES = config["training"]["resources"]
# The memory for the velocity a job reads (pipeline/loader.py): a resource, not a param, since it changes memory and
# speed but never a result, so changing it reruns nothing.
CACHE_MB = config["training"]["cache_mb"]
# Where a store larger than cache_mb is decompressed once and read from (pipeline/loader.py): speed only, a
# resource as well; absent when off (training.scratch null), since a resource holds no null.
SCRATCH = {"scratch": config["training"]["scratch"]} if config["training"].get("scratch") else {}


rule train:
    input:
        "results/data/{dataset}.zarr",
        selection=selection_input,
    output:
        model=f"{RUN}/model.pt",
        log_csv=f"{RUN}/log.csv",
    log:
        "results/logs/train/{dataset}/{model}/seed{seed}.log",
    benchmark:
        "results/benchmarks/train/{dataset}/{model}/seed{seed}.tsv"
    conda:
        "../../envs/training.yaml"
    threads: RESOURCES["threads"]
    resources:
        **SCRATCH,
        mem_mb=grow(RESOURCES["mem_mb"]),
        runtime=grow(RESOURCES["runtime"]),
        gpu=RESOURCES["gpu"],
        cache_mb=CACHE_MB,
    params:
        run=train_params,
    script:
        "../scripts/train.py"


use rule train as train_alpha with:
    output:
        model=f"{SWEEP_RUN}/model.pt",
        log_csv=f"{SWEEP_RUN}/log.csv",
    log:
        "results/logs/sweeps/alpha/{dataset}/{model}/alpha{alpha}/seed{seed}.log",
    benchmark:
        "results/benchmarks/sweeps/alpha/{dataset}/{model}/alpha{alpha}/seed{seed}.tsv"


rule evaluate:
    input:
        store="results/data/{dataset}.zarr",
        model=f"{RUN}/model.pt",
    output:
        f"{RUN}/metrics.json",
    log:
        "results/logs/evaluate/{dataset}/{model}/seed{seed}.log",
    benchmark:
        "results/benchmarks/evaluate/{dataset}/{model}/seed{seed}.tsv"
    conda:
        "../../envs/training.yaml"
    threads: RESOURCES["threads"]
    resources:
        **SCRATCH,
        mem_mb=grow(RESOURCES["mem_mb"]),
        runtime=grow(60),
        gpu=RESOURCES["gpu"],
        cache_mb=CACHE_MB,
    params:
        run=evaluate_params,
    script:
        "../scripts/evaluate.py"


# Persistence, the floor under every model: scored by the evaluation's functions on the same samples (same params).
rule evaluate_persistence:
    input:
        store="results/data/{dataset}.zarr",
    output:
        f"{PERSISTENCE_RUN}/metrics.json",
    log:
        "results/logs/evaluate/{dataset}/persistence.log",
    conda:
        "../../envs/training.yaml"
    threads: RESOURCES["threads"]
    resources:
        mem_mb=grow(RESOURCES["mem_mb"]),
        runtime=grow(60),
        gpu=0,  # no model to run: persistence is scored on the CPU, so it neither waits for nor holds a GPU
        cache_mb=CACHE_MB,
    params:
        run=evaluate_params,
    script:
        "../scripts/evaluate_persistence.py"


use rule evaluate as evaluate_alpha with:
    input:
        store="results/data/{dataset}.zarr",
        model=f"{SWEEP_RUN}/model.pt",
    output:
        f"{SWEEP_RUN}/metrics.json",
    log:
        "results/logs/evaluate/sweeps/alpha/{dataset}/{model}/alpha{alpha}/seed{seed}.log",
    benchmark:
        "results/benchmarks/evaluate/sweeps/alpha/{dataset}/{model}/alpha{alpha}/seed{seed}.tsv"
