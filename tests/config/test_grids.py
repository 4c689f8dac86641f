"""XP declarations: named override sets and grid files expanded like `dora grid`."""

from pathlib import Path

import pytest
import yaml

from audioflow.config.grids import GridError, expand_grid, format_value, load_grid, xp_specs

REPO = Path(__file__).resolve().parents[2]


def test_product_and_override_lists_combine_with_base():
    data = {
        "base": ["solver=compression/debug"],
        "grid": [
            {"product": {"optim.lr": [1e-4, 3e-4], "seed": [1, 2]}},
            {"overrides": [["optim.epochs=3"], "optim.lr=1e-3 +label=hi"]},
        ],
    }
    specs = expand_grid(data, "sweep", "sweep.yaml")
    assert [s.name for s in specs] == [f"sweep-{i}" for i in range(6)]
    assert specs[0].overrides == ("solver=compression/debug", "optim.lr=0.0001", "seed=1")
    assert specs[1].overrides == ("solver=compression/debug", "optim.lr=0.0001", "seed=2")
    assert specs[3].overrides[1:] == ("optim.lr=0.0003", "seed=2")
    assert specs[5].overrides == ("solver=compression/debug", "optim.lr=1e-3", "+label=hi")


def test_values_use_the_hydra_override_grammar():
    assert format_value(None) == "null"
    assert format_value(True) == "true"
    assert format_value([1, 2]) == "[1,2]"
    assert format_value({"a": 1}) == "{a:1}"
    assert format_value("compression/debug") == "compression/debug"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"grid": []}, "non-empty list"),
        ({"base": [], "grid": [{"product": {"seed": 1}}]}, r"grid\[0\].product.seed"),
        ({"grid": [{"sweep": {}}]}, r"grid\[0\]: each item is"),
        ({"grid": [{"overrides": [[1]]}]}, "list of override strings"),
        ({"grid": [{"overrides": []}], "extra": 1}, "unknown key"),
    ],
)
def test_malformed_grids_name_the_problem(data, message):
    with pytest.raises(GridError, match=message):
        expand_grid(data, "g", "g.yaml")


def test_xp_specs_reads_grid_files_and_refuses_duplicate_names(tmp_path):
    grid = tmp_path / "seeds.yaml"
    grid.write_text(yaml.safe_dump({"grid": [{"product": {"seed": [1, 2]}}]}))
    specs = xp_specs([{"name": "demo", "overrides": ["seed=0"]}], ["seeds.yaml"], tmp_path)
    assert [(s.name, s.overrides) for s in specs] == [
        ("demo", ("seed=0",)),
        ("seeds-0", ("seed=1",)),
        ("seeds-1", ("seed=2",)),
    ]
    with pytest.raises(GridError, match="declared twice"):
        xp_specs([{"name": "a"}, {"name": "a"}], [], tmp_path)
    with pytest.raises(GridError, match="does not exist"):
        xp_specs([], ["missing.yaml"], tmp_path)
    with pytest.raises(GridError, match="letters, digits"):
        xp_specs([{"name": "a b"}], [], tmp_path)


def test_shipped_grids_expand():
    grids = sorted((REPO / "config" / "grids").glob("*.yaml"))
    assert grids, "config/grids ships at least one example grid"
    for grid in grids:
        assert grid.read_text().startswith("#"), f"{grid} starts with a comment"
        assert load_grid(grid)
