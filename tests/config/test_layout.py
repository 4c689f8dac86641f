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
