"""Config validation: the JSON schema (workflow/schemas/config.schema.yaml) plus the checks a schema
cannot express (windows that fit in the simulated frames, held-out tasks that exist, model names, external
datasets whose spec and path exist and that are configured like a family, models of one's own whose names are free).

Snakemake runs it when it builds the DAG, so it imports only the standard library, yaml and jsonschema (both
Snakemake's own dependencies) and the light modules ``catalogue``, ``runs``, ``external``, the ``models`` name
list and ``models.custom``'s registration (never the user's module)."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

from . import external
from .catalogue import FAMILIES, SYMMETRY_FAMILIES, TEST_DOMAIN, TRAIN, frame_range, sim_keys, sim_roles, task_key
from .models import custom, names
from .runs import selection_starts, symmetry_of

SCHEMA = Path(__file__).resolve().parent.parent / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """The config has a wrong key or value; the message names it."""


def load(path: str | Path) -> dict:
    with open(path) as fh:
        return yaml.safe_load(fh)


def _where(path) -> str:
    return "config" + "".join(f"[{p!r}]" if isinstance(p, str) else f"[{p}]" for p in path)


# Keys that a newer key replaced: (section, old key) -> what to write instead. Refused with that message (before the
# schema, whose own message would only call the key unexpected).
REPLACED = {
    ("evaluation", "correlation_threshold"):
        "config['evaluation']['correlation_thresholds'], a list: the correlation time is reported at each threshold "
        "as PDEArena does (default [0.8, 0.9, 0.95]; write [0.8] for the former single default), "
        "in metrics.json as {split}_correlation_time_0.8, ...",
}


def _check_replaced(config: dict) -> None:
    for (section, key), instead in REPLACED.items():
        if isinstance(config.get(section), dict) and key in config[section]:
            raise ConfigError(f"config[{section!r}][{key!r}] was replaced by {instead}")


def validate(config: dict) -> dict:
    """Raise ``ConfigError`` naming the first wrong key or value; return ``config`` unchanged."""
    import jsonschema

    _check_replaced(config)
    schema = yaml.safe_load(SCHEMA.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        raise ConfigError(f"{_where(e.absolute_path)}: {e.message}")
    _check_semantics(config)
    _check_external(config)
    try:
        custom.check_config(config, names)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if "models" in config:
        _check_models(config)
    if "tuning" in config:
        _check_tuning(config)
    if "figures" in config:
        _check_figures(config)
    return config


def _check_semantics(config: dict) -> None:
    data = config["data"]
    for family in FAMILIES:
        cfg = data[family]
        first, last = frame_range(cfg)
        if not first < last <= cfg["steps"]:
            raise ConfigError(f"config['data'][{family!r}]: frames {first}..{last - 1} must lie within the "
                              f"{cfg['steps']} simulated steps")
        if "error_frames" in cfg and not first <= cfg["error_frames"][0] <= cfg["error_frames"][1] < last:
            raise ConfigError(f"config['data'][{family!r}]['error_frames']: {cfg['error_frames']} must be a range "
                              f"[first, last] within the stored frames {first}..{last - 1}")
        w = config["windows"][family]
        for split in ("train", "valid", "test_future", "test_domain"):
            if split not in w:
                continue
            lo, hi = w[split]
            rollout = w["rollout"]
            need = hi - 1 + w["offset"] + w["input_length"] + rollout
            if lo >= hi:
                raise ConfigError(f"config['windows'][{family!r}][{split!r}]: empty range [{lo}, {hi})")
            if need > last - first:
                raise ConfigError(f"config['windows'][{family!r}][{split!r}]: window starts up to {hi - 1} need "
                                  f"{need} frames but {family} stores {last - first} (first_frame..last frame)")
    for family in SYMMETRY_FAMILIES:
        keys = {task_key(family, i, key) for i, key in enumerate(sim_keys(family, data))}
        for i, task in enumerate(data[family]["test_domain"]):
            key = tuple(task) if isinstance(task, list) else task
            if key not in keys:
                raise ConfigError(f"config['data'][{family!r}]['test_domain'][{i}]: {task} is not a sim of the family")
        roles = sim_roles(family, data)
        if TRAIN not in roles or TEST_DOMAIN not in roles:
            raise ConfigError(f"config['data'][{family!r}]: needs both train and held-out (test_domain) sims")


def _check_external(config: dict) -> None:
    """An external dataset (pipeline/external.py) has a readable spec and path, a name of its own, and its
    windows and models; a section naming a dataset that is neither built in nor registered is a typo."""
    registered = config.get("external", {})
    for name, entry in registered.items():
        if name in FAMILIES or re.fullmatch(r"equivariance_\d+|default|shards", name):
            raise ConfigError(f"config['external'][{name!r}]: the name is taken by the pipeline's own datasets")
        for section in ("windows", "models"):
            if name not in config.get(section, {}):
                raise ConfigError(f"config[{section!r}]: no entry for the external dataset {name!r} "
                                  f"(config['external'][{name!r}])")
        try:
            external.check_spec(name, entry)
        except external.ExternalDataError as e:
            raise ConfigError(str(e)) from None
    known = set(FAMILIES) | set(registered)
    training, fig3 = config.get("training", {}), config.get("figures", {}).get("fig3", {})
    sections = [("config['windows']", config.get("windows", {}), known | {"default"}),
                ("config['models']", config.get("models", {}), known),
                ("config['training']['datasets']", training.get("datasets", {}), known),
                ("config['training']['models']", training.get("models", {}), known),
                ("config['figures']['fig3']['models']", fig3.get("models", {}), known - {"equivariance"}),
                ("config['figures']['fig3']['datasets']", fig3.get("datasets", []), known - {"equivariance"})]
    for where, section, allowed in sections:
        for name in section:
            if name not in allowed:
                raise ConfigError(f"{where}: {name!r} is neither one of the families nor an external dataset "
                                  f"registered in config['external'] ({', '.join(sorted(registered)) or 'none'})")


def _check_models(config: dict) -> None:
    """Every model named in ``models`` and ``alpha_sweep`` exists for its dataset's symmetry: one of the registry's
    or one registered in ``custom_models`` for that symmetry."""
    wanted = [(f"config['models'][{f!r}]", symmetry_of(f if f != "equivariance" else "equivariance_0", config), m)
              for f, ms in config["models"].items() for m in ms]
    sweep = config["alpha_sweep"]
    wanted.append(("config['alpha_sweep']['model']", symmetry_of(sweep["dataset"], config), sweep["model"]))
    own = custom.registered(config)
    for where, symmetry, name in wanted:
        known = names(symmetry) + custom.names(config, symmetry)
        if name in own and name not in known:
            raise ConfigError(f"{where}: the model {name!r} of config['custom_models'] is registered for "
                              f"{own[name]['symmetries']}, not for {symmetry!r}; add {symmetry!r} to its symmetries")
        if name not in known:
            raise ConfigError(f"{where}: no model {name!r} for symmetry {symmetry!r}; expected one of "
                              f"{', '.join(known)} (or a model of your own registered in config['custom_models'])")


def _check_tuning(config: dict) -> None:
    """Tuned models are trained ones, and the search space parses (its names exist, its bounds are ordered)."""
    from .search import parse_space

    for family, models in config["tuning"]["models"].items():
        untrained = sorted(set(models) - set(config["models"][family]))
        if untrained:
            raise ConfigError(f"config['tuning']['models'][{family!r}]: {untrained} are not trained "
                              f"(config['models'][{family!r}] = {config['models'][family]})")
        if models and family in config["windows"] and not selection_starts(config["windows"][family]):
            w = config["windows"][family]
            raise ConfigError(f"config['windows'][{family!r}]: no 'valid' window of {w['valid']} ends, after its "
                              f"rollout of {w['rollout']} steps, before the first target frame of 'test_future' "
                              f"{w['test_future']}, so the hyper-parameter search of {family} has nothing to score "
                              f"(docs/metrics.md, model selection); move 'valid' earlier or 'test_future' later")
    try:
        parse_space(config["tuning"]["space"])
    except ValueError as e:
        raise ConfigError(str(e)) from None


def _check_figures(config: dict) -> None:
    """Figure 3 shows models that are trained, at a seed that is run."""
    fig3 = config["figures"]["fig3"]
    if fig3["seed"] not in config["seeds"]:
        raise ConfigError(f"config['figures']['fig3']['seed']: {fig3['seed']} is not one of "
                          f"config['seeds'] {config['seeds']}")
    for dataset, models in fig3["models"].items():
        unknown = sorted(set(models) - set(config["models"][dataset]))
        if unknown:
            raise ConfigError(f"config['figures']['fig3']['models'][{dataset!r}]: {unknown} are not trained "
                              f"(config['models'][{dataset!r}] = {config['models'][dataset]})")
