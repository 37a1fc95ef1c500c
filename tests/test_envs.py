"""The rules' conda environments (envs/*.yaml) and pyproject.toml pin the packages that change results alike.

A job on a cluster runs in a conda env built from envs/, a local run in the venv installed from pyproject.toml;
both must give the same numbers, so every package of an env file is pinned to one version, and the packages that
matter to a version that pyproject.toml allows (its exact pin, where it has one). No conda channel is reachable
where these tests run: that the envs solve and build is not checked here (README, "Environments").
"""
import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from helpers import ROOT

ENVS = sorted((ROOT / "envs").glob("*.yaml"))
# The packages whose versions change data, models or numbers, those that write and read the stores, and the
# workflow engine itself.
MATTER = ("torch", "escnn", "phiflow", "phiml", "numpy", "zarr", "dask", "xarray", "snakemake",
          "snakemake-executor-plugin-slurm")
# conda-forge name -> PyPI name
CONDA_NAMES = {"pytorch": "torch", "snakemake-minimal": "snakemake", "dask-core": "dask"}


def conda_requirement(entry: str) -> tuple[str, SpecifierSet]:
    """Name and specifier of a conda match spec: ``numpy``, ``numpy>=1.26,<2``, ``python=3.11`` (3.11.*),
    ``numpy==1.26.4``, ``numpy 1.26.*``, ``conda-forge::numpy=1.26``, ``pytorch=2.13.0=cpu_*`` (a build string,
    dropped)."""
    match = re.fullmatch(r"(?:[\w.-]+::)?([A-Za-z0-9_.-]+)\s*(.*)", entry.strip())
    name, version = canonicalize_name(match[1]), match[2].replace(" ", "")
    version = re.sub(r"(?<=[\w*])=[^=]*$", "", version)  # name=version=build
    if re.match(r"=[^=]", version):  # conda's single '=' matches a version prefix
        version = "==" + version[1:] + ("" if version.endswith("*") else ".*")
    elif version[:1].isdigit():
        version = "==" + version
    return CONDA_NAMES.get(name, name), SpecifierSet(version)


def env_requirements(path: Path) -> dict[str, SpecifierSet]:
    """Every package of a conda env file, conda and pip entries alike."""
    out = {}
    for entry in yaml.safe_load(path.read_text())["dependencies"]:
        if isinstance(entry, dict):
            for pip_entry in entry.get("pip", []):
                req = Requirement(pip_entry)
                out[canonicalize_name(req.name)] = req.specifier
        else:
            name, spec = conda_requirement(entry)
            out[name] = spec
    return out


@pytest.fixture(scope="module")
def pyproject() -> dict:
    path = ROOT / "pyproject.toml"
    assert path.is_file(), "pyproject.toml is missing"
    return tomllib.loads(path.read_text())["project"]


@pytest.fixture(scope="module")
def pins(pyproject) -> dict[str, SpecifierSet]:
    """Specifiers of pyproject's dependencies, optional ones included; a package listed twice must agree."""
    entries = list(pyproject.get("dependencies", []))
    for extra in pyproject.get("optional-dependencies", {}).values():
        entries += extra
    out = {}
    for entry in entries:
        req = Requirement(entry)
        name = canonicalize_name(req.name)
        assert out.setdefault(name, req.specifier) == req.specifier, f"{name}: {out[name]} and {req.specifier}"
    return out


def test_envs_exist():
    assert ENVS, "no envs/*.yaml"


def test_rules_point_at_existing_envs():
    rules = [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]
    for rule_file in rules:
        for env in re.findall(r"conda:\s*\n?\s*[\"']([^\"']+)[\"']", rule_file.read_text()):
            assert (rule_file.parent / env).resolve().is_file(), f"{rule_file.name}: conda env {env} is missing"


def test_pyproject_pins_every_package_that_matters(pins):
    missing = [name for name in MATTER if name not in pins]
    assert not missing, f"pyproject.toml lacks {missing}"
    unpinned = [name for name in MATTER if not pins[name]]
    assert not unpinned, f"pyproject.toml gives no version for {unpinned}"


def pinned_version(spec: SpecifierSet) -> str | None:
    """The one version ``spec`` allows (``==1.26.4`` or conda's ``=1.26.4``, read as ``==1.26.4.*``), else None."""
    specs = list(spec)
    if len(specs) == 1 and specs[0].operator == "==":
        return specs[0].version.removesuffix(".*")
    return None


def post_deploy_requirements(env: Path) -> dict[str, SpecifierSet]:
    """Packages that ``<env>.post-deploy.sh`` installs with pip (escnn without its dependencies)."""
    script = env.with_name(env.stem + ".post-deploy.sh")
    if not script.is_file():
        return {}
    reqs = [Requirement(r) for r in re.findall(r"pip install --no-deps '([^']+)'", script.read_text())]
    return {canonicalize_name(r.name): r.specifier for r in reqs}


@pytest.mark.parametrize("env", ENVS, ids=lambda p: p.name)
def test_env_pins_every_package(env):
    requirements = {**env_requirements(env), **post_deploy_requirements(env)}
    loose = [name for name, spec in requirements.items() if name not in ("python", "pip") and not pinned_version(spec)]
    assert not loose, f"{env.name}: not pinned to one version: {loose}"


@pytest.mark.parametrize("env", ENVS, ids=lambda p: p.name)
def test_env_agrees_with_pyproject(env, pins):
    requirements = {**env_requirements(env), **post_deploy_requirements(env)}
    differ = {name: f"{env.name}: '{requirements[name]}', pyproject.toml: '{pins[name]}'"
              for name in MATTER
              if name in requirements and not pins[name].contains(pinned_version(requirements[name]))}
    assert not differ, differ


def test_escnn_envs_leave_out_py3nj(pins):
    """The envs whose rules build escnn models get escnn, pinned as in pyproject, without py3nj (a Fortran build)."""
    for name in ("training", "figures"):
        env = ROOT / "envs" / f"{name}.yaml"
        assert post_deploy_requirements(env).get("escnn") == pins["escnn"], f"{env.name}: no escnn post-deploy"
    for env in ENVS:
        names = [*env_requirements(env), *post_deploy_requirements(env)]
        assert not [n for n in names if n == "py3nj" or "fortran" in n or "compiler" in n], env.name


def test_every_job_imports_the_pipeline_the_same_way():
    """Every rule with an action runs a script in a conda env; every script puts the repository on sys.path
    first (the envs do not install the package), with the same line."""
    preamble = 'import sys\n\nsys.path.insert(0, snakemake.scriptdir + "/../..")\n'
    for script in (ROOT / "workflow" / "scripts").glob("*.py"):
        assert preamble in script.read_text().split("from pipeline")[0], f"{script.name}: no standard preamble"
    for rule_file in (ROOT / "workflow" / "rules").glob("*.smk"):
        for rule in re.split(r"\n(?=rule |use rule )", rule_file.read_text())[1:]:
            if rule.startswith("rule ") and ("script:" in rule) != ("conda:" in rule):
                pytest.fail(f"{rule_file.name}: {rule.splitlines()[0]} has a script without a conda env or back")


@pytest.mark.parametrize("env", ENVS, ids=lambda p: p.name)
def test_env_python_is_allowed_by_pyproject(env, pyproject):
    python = env_requirements(env).get("python")
    requires = SpecifierSet(pyproject.get("requires-python", ""))
    assert python, f"{env.name} does not pin python"
    versions = [f"3.{minor}.{micro}" for minor in range(8, 20) for micro in range(30)]
    assert any(python.contains(v) and requires.contains(v) for v in versions), \
        f"{env.name}: python '{python}', pyproject.toml requires-python '{requires}'"


@pytest.mark.parametrize("entry, name, spec", [
    ("numpy>=1.26,<2", "numpy", ">=1.26,<2"),
    ("python=3.11", "python", "==3.11.*"),
    ("numpy 1.26.*", "numpy", "==1.26.*"),
    ("conda-forge::pytorch=2.13.0", "torch", "==2.13.0.*"),
    ("pytorch=2.13.0=cuda*", "torch", "==2.13.0.*"),
    ("pip", "pip", ""),
])
def test_conda_requirement(entry, name, spec):
    assert conda_requirement(entry) == (name, SpecifierSet(spec))
