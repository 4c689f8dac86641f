"""The XP layout contract: names spelled once, paths built from them."""

from pathlib import Path

from audioflow.config import layout


def test_marker_paths_round_trip_through_the_marker_pattern(tmp_path: Path):
    for stage in layout.STAGES:
        path = layout.marker_path(layout.xp_folder(tmp_path, "0123abcd"), stage, 7)
        assert path == tmp_path / "xps" / "0123abcd" / "stages" / f"{stage}_7.json"
        match = layout.MARKER_RE.match(path.name)
        assert match and match.groups() == (stage, "7")
    assert not layout.MARKER_RE.match("test_1.json")


def test_signature_form():
    assert layout.is_signature("0123abcd")
    for bad in ("0123ABCD", "0123abc", "0123abcde", "../../etc", ""):
        assert not layout.is_signature(bad)


REPO = Path(__file__).resolve().parents[2]
CONTRACTS = {
    "the stage names": r"""["']train["'],\s*["']valid["'],\s*["']evaluate["'],\s*["']generate""",
    "the signature pattern": r"\[0-9a-f\]\{8\}",
    "the stages/ folder": r"""["']stages["']|["']stages/|/stages/\{""",
}


def test_the_layout_is_spelled_once_in_src_and_the_workflow_rules():
    import re

    files = [p for p in (REPO / "src" / "audioflow").rglob("*.py")]
    files += [*(REPO / "workflow" / "rules").glob("*.smk"), REPO / "Snakefile"]
    for contract, pattern in CONTRACTS.items():
        found = [
            f"{path.relative_to(REPO)}:{n}"
            for path in files
            for n, line in enumerate(path.read_text().splitlines(), 1)
            if re.search(pattern, line)
        ]
        assert found and all("config/layout.py" in f for f in found), (contract, found)
        assert len(found) == 1, (contract, found)


def test_the_four_stage_rules_are_defined_once():
    rules = "\n".join(p.read_text() for p in (REPO / "workflow" / "rules").glob("*.smk"))
    for stage in layout.STAGES:
        assert f"rule {stage}:" not in rules
    assert rules.count("for stage in layout.STAGES:") == 1
