"""`audioflow report` on real short runs: one XP, and two XPs overlaid, viewable offline."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from audioflow.cli import main
from audioflow.config import get_xp
from audioflow.config.layout import xp_folder
from audioflow.config.xp import set_current_xp
from audioflow.data.manifest import build_manifest
from audioflow.data.synth import write_corpus
from audioflow.solvers.registry import get_solver_class

SHORT = [
    "solver=compression/debug",
    "optim.epochs=2",
    "optim.updates_per_epoch=4",
    "logging.log_updates=2",
    "logging.log_tensorboard=true",
    "dataset.valid.num_samples=8",
    "dataset.evaluate.num_samples=8",
    "generate.every=1",
]


class Links(HTMLParser):
    """Every src/href of a page."""

    def __init__(self):
        super().__init__()
        self.links: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        self.links += [(tag, v) for k, v in attrs if k in ("src", "href") and v]


def links(page: Path) -> list[tuple[str, str]]:
    parser = Links()
    parser.feed(page.read_text())
    return parser.links


@pytest.fixture(scope="module")
def xps(tmp_path_factory):
    """Two short demo-codec XPs (two learning rates) in one XP root: (root, [sig, sig])."""
    root = tmp_path_factory.mktemp("report")
    sources = []
    for split, seed in (("train", 1), ("valid", 2), ("evaluate", 3)):
        write_corpus(root / "data" / split, 8, seed)
        manifest = root / "data" / split / "manifest.jsonl.gz"
        build_manifest([root / "data" / split], manifest, workers=1)
        sources.append(f"datasource.{split}={manifest}")
    sources.append(f"datasource.generate={root / 'data' / 'evaluate' / 'manifest.jsonl.gz'}")
    sigs = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AUDIOFLOW_XP_DIR", str(root / "xps"))
        for lr in ("3e-3", "1e-3"):
            xp = get_xp([*SHORT, *sources, f"optim.lr={lr}"])
            set_current_xp(xp)
            get_solver_class(str(xp.cfg.solver))(xp.cfg).run()
            sigs.append(xp.sig)
        set_current_xp(None)
        yield root, sigs


def test_report_of_one_xp(xps, monkeypatch, capsys):
    root, (sig, _) = xps
    monkeypatch.setenv("AUDIOFLOW_XP_DIR", str(root / "xps"))
    assert main(["report", sig]) == 0
    page = xp_folder(root / "xps", sig) / "report" / "index.html"
    assert capsys.readouterr().out.strip() == str(page)
    text = page.read_text()
    assert "optim.lr=3e-3" in text and "Best state: epoch" in text
    assert "Stage timings" in text and "<td>generate</td><td>2</td>" in text
    found = links(page)
    charts = {v for t, v in found if t == "img"}
    # one chart per quantity: per-update train, valid and evaluate metrics, throughput
    for quantity in ("mel_distance", "gen_loss", "sisnr_q1", "throughput_updates_per_second"):
        assert f"charts/{quantity}.png" in charts
    # both generate epochs' listening pages, linked and found
    pages = [v for t, v in found if t == "a"]
    assert [Path(p).parent.name for p in pages] == ["epoch_1", "epoch_2"]


def test_report_of_two_xps_overlays_them_and_loads_nothing_remote(xps, monkeypatch, tmp_path):
    root, sigs = xps
    monkeypatch.setenv("AUDIOFLOW_XP_DIR", str(root / "xps"))
    out = tmp_path / "compare"
    assert main(["report", *sigs, "-o", str(out)]) == 0
    page = out / "index.html"
    text = page.read_text()
    assert all(f"XP <code>{sig}</code>" in text for sig in sigs)
    found = links(page)
    assert found
    for _, value in found:
        assert "//" not in value and not value.startswith(("http:", "https:", "data:")), value
        assert (out / value).is_file(), f"{value} is missing"
    images = [out / v for t, v in found if t == "img"]
    assert len(images) > 10
    for image in images:
        assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "http" not in text.split("<body>", 1)[1]


def test_bad_arguments_are_one_line_and_exit_2(xps, monkeypatch, capsys, tmp_path):
    root, sigs = xps
    monkeypatch.setenv("AUDIOFLOW_XP_DIR", str(root / "xps"))
    assert main(["report", "nothex!!"]) == 2
    assert main(["report", *sigs]) == 2  # several XPs: -o needed
    assert main(["report", "0000beef", "-o", str(tmp_path / "x")]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3 and all(e.startswith("audioflow report: ") for e in errors)
    assert "0000beef" in errors[2] and not (tmp_path / "x").exists()
    # a unique prefix names the XP
    assert main(["report", sigs[0][:6], "-o", str(tmp_path / "y")]) == 0
    assert f"XP <code>{sigs[0]}</code>" in (tmp_path / "y" / "index.html").read_text()


def test_a_damaged_history_is_named(xps, monkeypatch, capsys, tmp_path):
    root, (sig, _) = xps
    copy = xp_folder(tmp_path, sig)
    copy.mkdir(parents=True)
    for name in ("overrides.json", "delta.json", "config.yaml"):
        (copy / name).write_bytes((xp_folder(root / "xps", sig) / name).read_bytes())
    (copy / "history.json").write_text('[{"epoch": 1,')
    monkeypatch.setenv("AUDIOFLOW_XP_DIR", str(tmp_path))
    assert main(["report", sig]) == 2
    err = capsys.readouterr().err
    assert "history.json: not valid JSON" in err and len(err.splitlines()) == 1
    (copy / "history.json").write_text("[]")
    (copy / "config.yaml").write_text("optim: [unclosed\n")
    assert main(["report", sig]) == 2
    err = capsys.readouterr().err
    assert "config.yaml: not valid YAML" in err and len(err.splitlines()) == 1
    assert json.loads((copy / "overrides.json").read_text())
