"""The shipped workflow config and its schema."""

import copy
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from audioflow.config.grids import xp_specs

REPO = Path(__file__).resolve().parents[2]
SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")
SHIPPED = REPO / "config" / "workflow.yaml"


def test_shipped_config_is_valid_and_names_its_published_xps():
    assert SHIPPED.read_text().startswith("#")
    config = yaml.safe_load(SHIPPED.read_text())
    validate(config, SCHEMA)
    names = {spec.name for spec in xp_specs(config["xps"], config["grids"], REPO)}
    assert {item["xp"] for item in config["publish"]} <= names
    assert config["launcher"] == "local"


def test_schema_fills_defaults():
    config = {"xps": [{"name": "a", "overrides": ["seed=1"]}]}
    validate(config, SCHEMA)
    assert config["launcher"] == "local" and config["accept_drift"] is False
    assert config["train"] == {"epochs_per_job": 1}
    assert config["grids"] == [] and config["publish"] == [] and config["config_dir"] is None


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"launcher": "slurm"}, "launcher"),
        ({"xps": [{"name": "a b"}]}, "name"),
        ({"train": {"epochs_per_job": 0}}, "epochs_per_job"),
        ({"resources": {"train": {"gpus": 1}}}, "gpus"),
        ({"synth": {"train": {"seed": 1}}}, "n"),
        ({"typo": 1}, "typo"),
    ],
)
def test_schema_rejects_bad_values(change, key):
    config = copy.deepcopy(yaml.safe_load(SHIPPED.read_text()))
    config.update(change)
    with pytest.raises(WorkflowError, match=key):
        validate(config, SCHEMA)
