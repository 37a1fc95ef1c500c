# Simulation shards -> one zarr store per dataset; the equivariance levels from their base sims; external datasets
# (config['external']) checked and converted to the same layout.


rule simulate_shard:
    output:
        temp("results/data/shards/{family}/{shard}.npy"),
    log:
        "results/logs/simulate/{family}_{shard}.log",
    benchmark:
        "results/benchmarks/simulate/{family}_{shard}.tsv"
    conda:
        "../../envs/simulation.yaml"
    threads: 1
    resources:
        mem_mb=grow(4000),
        runtime=grow(120),
    params:
        data=lambda wc: data_params(wc.family),
    script:
        "../scripts/simulate_shard.py"


rule assemble_dataset:
    input:
        lambda wc: expand(
            "results/data/shards/{family}/{shard}.npy", family=wc.family, shard=range(n_shards(wc.family))
        ),
    output:
        directory("results/data/{family}.zarr"),
    log:
        "results/logs/assemble/{family}.log",
    wildcard_constraints:
        family="|".join(FAMILY_DATASETS),
    conda:
        "../../envs/simulation.yaml"
    threads: 1
    resources:
        mem_mb=grow(8000),
        runtime=grow(30),
    params:
        data=lambda wc: data_params(wc.family, STORE_KEYS),
    script:
        "../scripts/assemble_dataset.py"


rule equivariance_level:
    input:
        expand("results/data/shards/equivariance/{shard}.npy", shard=range(n_shards("equivariance"))),
    output:
        directory("results/data/equivariance_{level}.zarr"),
    log:
        "results/logs/assemble/equivariance_{level}.log",
    conda:
        "../../envs/simulation.yaml"
    threads: 1
    resources:
        mem_mb=grow(4000),
        runtime=grow(30),
    params:
        data=data_params("equivariance", STORE_KEYS),
    script:
        "../scripts/equivariance_level.py"


rule import_external:
    input:
        data=lambda wc: config["external"][wc.external]["path"],
        spec=lambda wc: config["external"][wc.external]["spec"],
    output:
        directory("results/data/{external}.zarr"),
    log:
        "results/logs/assemble/{external}.log",
    wildcard_constraints:
        external="|".join(EXTERNAL_DATASETS) or "(?!)",
    conda:
        "../../envs/simulation.yaml"
    threads: 1
    resources:
        mem_mb=grow(4000),
        runtime=grow(30),
    params:
        entry=lambda wc: config["external"][wc.external],
        windows=lambda wc: config["windows"][wc.external],
        chunk_frames=config["data"]["chunk_frames"],
    script:
        "../scripts/import_external.py"


rule equivariance_table:
    input:
        expand("results/data/equivariance_{level}.zarr", level=LEVELS),
    output:
        report("results/data/equivariance_levels.csv", caption="../report/equivariance_levels.rst", category="Data"),
    log:
        "results/logs/assemble/equivariance_table.log",
    conda:
        "../../envs/simulation.yaml"
    threads: 1
    resources:
        mem_mb=grow(1000),
        runtime=grow(10),
    script:
        "../scripts/equivariance_table.py"


# Reads every chunk of every store the config defines (those built so far) and reports damaged chunks, changing
# nothing (pipeline/integrity.py); fails when any is damaged. No input, so it never builds a store; no output, so
# it runs whenever asked: `snakemake verify`.
rule verify:
    log:
        "results/logs/verify.log",
    localrule: True
    conda:
        "../../envs/simulation.yaml"
    threads: 1
    resources:
        mem_mb=grow(2000),
        runtime=grow(60),
    params:
        stores=DATASETS_ALL,
    script:
        "../scripts/verify.py"
