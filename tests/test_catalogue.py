"""The light catalogue of sims (what Snakemake plans with) names the same sims, roles and shards as the plumes
that pipeline.families builds."""
from __future__ import annotations

import pytest
from helpers import config

from pipeline import catalogue
from pipeline.families import family_sims


@pytest.mark.parametrize("preset", [None, "quick", "tiny"])
@pytest.mark.parametrize("family", catalogue.FAMILIES)
def test_catalogue_matches_family_sims(preset, family):
    cfg = config(preset)
    sims = family_sims(family, cfg["data"])
    assert catalogue.sim_keys(family, cfg["data"]) == [s.params for s in sims]
    assert catalogue.sim_roles(family, cfg["data"]) == [s.role for s in sims]


def test_paper_shards():
    data = config()["data"]
    # at most 9 sims a job: translation 35 -> 4, rotation 36 -> 4, scaling 38 -> 5, equivariance 19 base sims -> 3
    assert [len(catalogue.family_shards(f, data)) for f in catalogue.FAMILIES] == [4, 4, 5, 3]
