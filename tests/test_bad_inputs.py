"""Every bad input: one line naming the culprit, exit status 2, nothing written.

Each case runs the real `audioflow` entry point (in this process, output captured at the
file-descriptor level so that a spawned torchrun would show) on a user solver with tiny
settings. Every case must fail before training starts, so the whole file takes seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from audioflow import cli

USER_CONFIG = Path(__file__).parent / "solvers" / "user_config"
RUN = ("run", "solver=my_solver", "--config-dir", "{uc}", "optim.epochs=2")


class _RunsCode:
    """Pickles to a call of os.system: what a hostile 'checkpoint' holds."""

    def __reduce__(self):
        return (os.system, ("echo this must never run",))


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """Bad checkpoint files and a manifest whose audio files were partly deleted."""
    root = tmp_path_factory.mktemp("bad_files")
    (root / "empty.th").write_bytes(b"")
    (root / "text.th").write_text("epoch: 3\nloss: 0.1\n")
    torch.save({"model": {"0.weight": torch.randn(64, 64)}}, root / "whole.th")
    whole = (root / "whole.th").read_bytes()
    (root / "truncated.th").write_bytes(whole[: len(whole) // 2])
    torch.save({"model": _RunsCode()}, root / "pickle.th")
    torch.save(torch.nn.Linear(3, 5).state_dict(), root / "foreign.th")  # another model
    (root / "no_checkpoint").mkdir()
    corpus = root / "corpus"
    assert cli.main(["synth", str(corpus), "--n", "3", "--seed", "0"]) == 0
    assert cli.main(["manifest", str(corpus), "-o", str(corpus / "manifest.jsonl.gz")]) == 0
    next(corpus.glob("00001_*.flac")).unlink()
    return root


@pytest.fixture
def uc(tmp_path, monkeypatch) -> Path:
    """A copy of the user config folder (plus a solver entry naming a missing class), a
    clean AUDIOFLOW_* environment and an XP root of this test."""
    target = tmp_path / "my_configs"
    shutil.copytree(USER_CONFIG, target, ignore=shutil.ignore_patterns("__pycache__"))
    text = (target / "solver" / "my_solver.yaml").read_text()
    (target / "solver" / "no_class.yaml").write_text(
        text.replace("solver: my_solver.MySolver", "solver: my_solver.Nope")
    )
    for name in list(os.environ):
        if name.startswith("AUDIOFLOW_") and name != "AUDIOFLOW_CACHE_DIR":
            monkeypatch.delenv(name)
    monkeypatch.setenv("AUDIOFLOW_XP_DIR", str(tmp_path / "xp_root"))
    monkeypatch.syspath_prepend(str(target))
    sys.modules.pop("my_solver", None)
    return target


@dataclass(frozen=True)
class Case:
    """A command line that must be refused, and the text its one line must contain."""

    id: str
    argv: tuple[str, ...]
    culprit: str
    env: dict = field(default_factory=dict)


def _run(*extra: str) -> tuple[str, ...]:
    return (*RUN, *extra)


def _manifest_run() -> tuple[str, ...]:
    manifest = "{files}/corpus/manifest.jsonl.gz"
    keys = ("train", "valid", "evaluate", "generate")
    return (
        "run",
        "solver=compression/debug",
        "optim.epochs=1",
        *(f"datasource.{k}={manifest}" for k in keys),
    )


NO_TEAM = {"AUDIOFLOW_TEAM": "nosuchteam"}
NO_TEAM_FILE = {"AUDIOFLOW_CONFIG": "/nonexistent"}
NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")

CASES = [
    # overrides: keys, groups, types, syntax
    Case("unknown-key", _run("optim.lrr=1e-3"), "optim.lrr"),
    Case("unknown-group-option", _run("solver=nosuch"), "solver=nosuch"),
    Case("wrong-type", _run("optim.epochs=ten"), "optim.epochs"),
    Case("list-for-number", _run("optim.lr=[1,2]"), "optim.lr"),
    Case("add-existing-key", _run("+optim.lr=1"), "+optim.lr=1"),
    Case("unparsable", _run("optim.lr=1)"), "optim.lr=1)"),
    Case("deleted-required-key", _run("~optim.epochs"), "optim.epochs"),
    # values a type check lets through
    Case("zero-epochs", _run("optim.epochs=0"), "optim.epochs=0"),
    Case("negative-updates", _run("optim.updates_per_epoch=-1"), "optim.updates_per_epoch"),
    Case("zero-batch", _run("dataset.batch_size=0"), "dataset.batch_size=0"),
    Case("lr-nan", _run("optim.lr=nan"), "optim.lr=nan"),
    Case("lr-negative", _run("optim.lr=-1"), "optim.lr=-1"),
    Case("negative-workers", _run("dataset.num_workers=-2"), "dataset.num_workers=-2"),
    Case("unknown-device", _run("device=tpu"), "device=tpu"),
    Case("unknown-precision", _run("optim.precision=fp8"), "optim.precision=fp8"),
    Case("port-out-of-range", _run("monitoring.port=70000"), "monitoring.port=70000"),
    Case("bad-pushgateway", _run("monitoring.pushgateway=http://pg:909l"), "pushgateway"),
    pytest.param(Case("cuda-without-gpu", _run("device=cuda"), "device=cuda"), marks=NO_GPU),
    # the command line
    Case("batch-not-divisible", _run("-d", "3"), "dataset.batch_size=8"),
    Case("zero-processes", _run("-d", "0"), "--nproc 0"),
    Case("stage-without-epoch", _run("--stage", "train"), "--stage"),
    Case("epoch-zero", _run("--stage", "train", "--epoch", "0"), "--epoch 0"),
    Case("epoch-past-the-last", _run("--stage", "valid", "--epoch", "5"), "--epoch 5"),
    Case("missing-config-dir", ("run", "--config-dir", "/nonexistent/conf"), "/nonexistent"),
    Case("missing-solver-class", _run("solver=no_class"), "my_solver.Nope"),
    Case("follow-unknown-sig", ("run", "-f", "0badc0de"), "0badc0de"),
    Case("follow-not-a-sig", ("run", "-f", "../x"), "'../x'"),
    # team and cluster: sig, info and run refuse alike
    Case("run-unknown-team", _run(), "nosuchteam", NO_TEAM),
    Case("run-missing-team-file", _run(), "AUDIOFLOW_CONFIG", NO_TEAM_FILE),
    Case("run-unknown-cluster", _run(), "nosuchcluster", {"AUDIOFLOW_CLUSTER": "nosuchcluster"}),
    Case("sig-unknown-team", ("sig", "seed=3"), "nosuchteam", NO_TEAM),
    Case("sig-missing-team-file", ("sig",), "AUDIOFLOW_CONFIG", NO_TEAM_FILE),
    Case("sig-lr-negative", ("sig", "optim.lr=-1"), "optim.lr=-1"),
    Case("info-unknown-team", ("info", "seed=3"), "nosuchteam", NO_TEAM),
    Case("info-lr-negative", ("info", "optim.lr=-1"), "optim.lr=-1"),
    Case("info-unknown-sig", ("info", "-f", "0badc0de"), "0badc0de"),
    Case("ls-bad-filter", ("ls", "--where", "optim.lr"), "--where optim.lr"),
    # continue_from: never a traceback, never torch's weights_only=False hint
    Case("continue-empty", _run("continue_from={files}/empty.th"), "empty.th"),
    Case("continue-text", _run("continue_from={files}/text.th"), "text.th"),
    Case("continue-truncated", _run("continue_from={files}/truncated.th"), "truncated.th"),
    Case("continue-pickle", _run("continue_from={files}/pickle.th"), "pickle.th"),
    Case("continue-foreign-arch", _run("continue_from={files}/foreign.th"), "foreign.th"),
    Case("continue-missing", _run("continue_from={files}/nope.th"), "nope.th"),
    Case("continue-no-checkpoint", _run("continue_from={files}/no_checkpoint"), "no_checkpoint"),
    Case("continue-unknown-sig", _run("continue_from=0badc0de"), "0badc0de"),
    # data
    Case("missing-audio-file", _manifest_run(), "00001_"),
]


def _ids(case) -> str:
    return case.id if isinstance(case, Case) else case.values[0].id


@pytest.mark.parametrize("case", CASES, ids=[_ids(c) for c in CASES])
def test_a_bad_input_is_one_line_exit_2_and_nothing_written(case, uc, files, capfd, monkeypatch):
    for name, value in case.env.items():
        monkeypatch.setenv(name, value)
    argv = [a.format(uc=uc, files=files) for a in case.argv]
    code = cli.main(argv)
    out, err = capfd.readouterr()
    assert code == 2, (code, err)
    assert err.count("\n") == 1 and err.startswith(f"audioflow {argv[0]}: "), err
    assert case.culprit.format(files=files) in err, err
    assert "Traceback" not in err and "weights_only" not in err
    assert "must never run" not in out + err
    root = Path(os.environ["AUDIOFLOW_XP_DIR"])
    assert [p for p in root.rglob("*") if p.is_file()] == [], "files written under the XP root"


def test_the_suite_is_long_enough():
    assert len(CASES) >= 30


def test_several_problems_are_reported_together(uc, capfd, monkeypatch):
    monkeypatch.setenv("AUDIOFLOW_TEAM", "nosuchteam")
    code = cli.main(["sig", "optim.lr=-1"])
    err = capfd.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 2 and "nosuchteam" in lines[0] and "optim.lr=-1" in lines[1], err
    code = cli.main(["run", "optim.lrr=1", "solver=nosuch", "optim.epochs=ten"])
    assert code == 2 and len(capfd.readouterr().err.strip().splitlines()) == 4


def test_accept_drift_refuses_a_checkpoint_of_another_architecture(uc, capfd):
    """The model changed behind the same signature: refused before drift.json/config.yaml
    are rewritten, in one line instead of load_state_dict's traceback."""
    args = ["run", "solver=my_solver", "--config-dir", str(uc), "optim.epochs=1"]
    assert cli.main(args) == 0
    (folder,) = (Path(os.environ["AUDIOFLOW_XP_DIR"]) / "xps").iterdir()
    stored = (folder / "config.yaml").read_text()
    capfd.readouterr()
    solver_yaml = uc / "solver" / "my_solver.yaml"
    solver_yaml.write_text(solver_yaml.read_text().replace("hidden: 16", "hidden: 32"))
    code = cli.main([*args, "--accept-drift"])
    err = capfd.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "checkpoint.th does not fit" in err and "'0.weight' is [16, 8] there, [32, 8]" in err
    assert (folder / "config.yaml").read_text() == stored
    assert not (folder / "drift.json").exists()


def test_an_infinite_lr_fails_the_run_and_is_never_done(uc, capfd):
    code = cli.main([*(a.format(uc=uc) for a in RUN), "optim.lr=inf", "optim.epochs=1"])
    capfd.readouterr()
    assert code != 0
    assert cli.main(["ls", "--json"]) == 0
    out = capfd.readouterr().out
    rows = json.loads(out) if out.strip() else []  # refused up front: no XP at all
    assert all(row["status"] != "done" for row in rows), rows


@pytest.mark.slow
def test_an_error_only_workers_see_is_said_once_with_exit_2(uc, files, capfd):
    """`run -d 2` with audio files missing (seen when the workers open the dataset): rank 0
    says it, the other rank stays quiet, no torchrun traceback, and the status stays 2."""
    argv = [a.format(files=files) for a in _manifest_run()]
    code = cli.main([argv[0], "-d", "2", *argv[1:]])
    err = capfd.readouterr().err
    assert code == 2, err
    assert err.count("audioflow run: ") == 1 and "00001_" in err
    assert "Traceback" not in err and "ChildFailedError" not in err
