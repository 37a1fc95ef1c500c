import subprocess
import sys

import pytest

from helpers import ROOT, config, preset
from pipeline import config as pipeline_config


@pytest.mark.parametrize("preset", [None, "quick", "tiny"])
def test_shipped_configs_are_valid(preset):
    pipeline_config.validate(config(preset))  # presets are merged over config.yaml, as --configfile does


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["data"]["rotation"].update(simz=3),
     r"config\['data'\]\['rotation'\]: Additional properties are not allowed \('simz'"),
    (lambda c: c["data"].update(grid="64"), r"config\['data'\]\['grid'\]: '64' is not of type 'integer'"),
    (lambda c: c["data"]["scaling"].update(factors=[0.5]),
     r"config\['data'\]\['scaling'\]\['factors'\]\[0\]: 0.5 is less than the minimum of 1"),
    (lambda c: c["data"]["translation"].update(test_domain=[[33, 5]]),
     r"config\['data'\]\['translation'\]\['test_domain'\]\[0\]: \[33, 5\] is not a sim"),
    (lambda c: c["data"]["equivariance"].update(last_frame=70),
     r"config\['data'\]\['equivariance'\]: frames 10..70 must lie within the 61 simulated steps"),
    (lambda c: c["windows"].update(rotation={**c["windows"]["rotation"], "test_future": [200, 300]}),
     r"config\['windows'\]\['rotation'\]\['test_future'\]: window starts up to 299 need 331 frames "
     r"but rotation stores 309"),
    (lambda c: c["data"]["equivariance"].update(error_frames=[5, 58]),
     r"config\['data'\]\['equivariance'\]\['error_frames'\]: \[5, 58\] must be a range \[first, last\] "
     r"within the stored frames 10..59"),
    (lambda c: c["data"].pop("translation"), r"config\['data'\]: 'translation' is a required property"),
    (lambda c: c["evaluation"].update(correlation_threshold=0.8),
     r"config\['evaluation'\]\['correlation_threshold'\] was replaced by "
     r"config\['evaluation'\]\['correlation_thresholds'\], a list"),
    (lambda c: c["evaluation"].update(correlation_thresholds=[]),
     r"config\['evaluation'\]\['correlation_thresholds'\]: \[\] should be non-empty"),
    (lambda c: c["evaluation"].update(correlation_thresholds=[0.8, 0.8]),
     r"config\['evaluation'\]\['correlation_thresholds'\]: \[0.8, 0.8\] has non-unique elements"),
    (lambda c: c["evaluation"].update(correlation_thresholds=[0.9, 1.5]),
     r"config\['evaluation'\]\['correlation_thresholds'\]\[1\]: 1.5 is greater than the maximum of 1"),
])
def test_errors_name_the_key(edit, message):
    cfg = config()
    edit(cfg)
    with pytest.raises(pipeline_config.ConfigError, match=message):
        pipeline_config.validate(cfg)


def test_correlation_thresholds_have_one_definition():
    """The schema's default and config.yaml say what pipeline.runs.CORRELATION_THRESHOLDS (PDEArena's) says."""
    import yaml

    from pipeline import runs
    schema = yaml.safe_load(open(pipeline_config.SCHEMA))
    assert tuple(schema["properties"]["evaluation"]["properties"]["correlation_thresholds"]["default"]) \
        == runs.CORRELATION_THRESHOLDS == (0.8, 0.9, 0.95)
    assert runs.correlation_thresholds(config()) == [0.8, 0.9, 0.95]
    assert runs.correlation_thresholds({}) == [0.8, 0.9, 0.95]  # no evaluation section: the default


@pytest.mark.parametrize("name", ["quick", "tiny"])
def test_preset_header_command_works_from_another_directory(name, tmp_path):
    """The command in a preset's header comment plans its jobs, also with the run's files in another folder."""
    header = [line for line in open(preset(name)) if line.startswith("#")]
    command = next(line.lstrip("# ").split() for line in header if line.lstrip("# ").startswith("snakemake "))
    cmd = [sys.executable, "-m", "snakemake", *command[1:], "-n", "--quiet", "--directory", str(tmp_path)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
