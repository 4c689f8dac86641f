"""Speech corpus layouts: transcripts beside audio files, and each corpus importer on a
fixture in the real corpus's format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioflow.cli import main as cli
from audioflow.data.corpora import import_corpus
from audioflow.data.corpora.common import LayoutError
from audioflow.data.manifest import build_manifest, read_manifest

from . import speech_corpora


def _write(path: Path, seconds: float = 0.3) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(int(16000 * seconds), dtype=np.float32) + 0.1, 16000)


def _rejects(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_stem_transcripts_txt_and_lab_are_read(tmp_path):
    folder = tmp_path / "speech"
    for i in range(4):
        _write(folder / f"utt{i}.wav")
    (folder / "utt0.txt").write_text("zero one\n")
    (folder / "utt1.lab").write_text("one two")  # Montreal Forced Aligner's plain .lab
    # an HTK label file: times in 100 ns, silences left out of the transcript
    (folder / "utt2.lab").write_text("0 1000000 sil\n1000000 3000000 three\n3000000 5 four\n")
    (folder / "utt3.wav.txt").write_text("the file name wins")
    (folder / "utt3.txt").write_text("not this one")
    out = tmp_path / "m.jsonl.gz"
    build_manifest([folder], out, workers=1)
    texts = {Path(e["path"]).name: e.get("text") for e in read_manifest(out)}
    assert texts == {
        "utt0.wav": "zero one",
        "utt1.wav": "one two",
        "utt2.wav": "three four",
        "utt3.wav": "the file name wins",
    }


def test_folder_of_many_utterances_has_every_transcript(tmp_path):
    folder = tmp_path / "speech"
    for i in range(40):
        _write(folder / f"spk{i % 3}" / f"utt{i}.wav", 0.05)
        (folder / f"spk{i % 3}" / f"utt{i}.txt").write_text(f"utterance number {i}\n")
    out = tmp_path / "m.jsonl.gz"
    report = build_manifest([folder], out, workers=2)
    entries = read_manifest(out)
    assert report.entries == 40 and not report.rejects
    assert sorted(e["text"] for e in entries) == sorted(f"utterance number {i}" for i in range(40))


def test_editing_a_stem_transcript_is_seen_by_a_rescan(tmp_path):
    folder = tmp_path / "speech"
    _write(folder / "a.wav")
    (folder / "a.txt").write_text("before")
    out = tmp_path / "m.jsonl.gz"
    build_manifest([folder], out, workers=1)
    (folder / "a.txt").write_text("after, longer")
    report = build_manifest([folder], out, workers=1)
    assert not report.unchanged and report.reused == 1
    assert read_manifest(out)[0]["text"] == "after, longer"


def test_require_text_rejects_files_without_a_transcript(tmp_path):
    folder = tmp_path / "speech"
    _write(folder / "a.wav")
    _write(folder / "b.wav")
    (folder / "a.txt").write_text("has one")
    out = tmp_path / "m.jsonl.gz"
    report = build_manifest([folder], out, workers=1, require_text=True)
    assert [Path(e["path"]).name for e in read_manifest(out)] == ["a.wav"]
    (row,) = _rejects(report.rejects_file)
    assert row["path"] == "speech/b.wav" and row["reason"].startswith("no transcript")


def _check_import(report, output, texts, rejects, key):
    entries = read_manifest(output)
    got = {key(e): e["text"] for e in entries}
    assert got == texts
    rows = _rejects(report.rejects_file)
    assert len(rows) == len(rejects), rows
    for name, prefix in rejects.items():
        match = [r for r in rows if Path(r["path"]).name == name or name in r["reason"]]
        assert match and match[0]["reason"].startswith(prefix), (name, rows)
    return entries


def test_librispeech(tmp_path):
    root, texts, rejects = speech_corpora.librispeech(tmp_path)
    out = tmp_path / "ls.jsonl.gz"
    report = import_corpus("librispeech", root, out, workers=1)
    entries = _check_import(report, out, texts, rejects, lambda e: Path(e["path"]).name)
    by_id = {e["id"]: e for e in entries}
    assert by_id["84-121123-0000"]["speaker"] == "84"
    assert by_id["84-121123-0000"]["chapter"] == "121123"
    assert by_id["84-121123-0000"]["sex"] == "F" and by_id["174-50561-0000"]["sex"] == "M"
    assert all(e["corpus"] == "librispeech" and e["sample_rate"] == 16000 for e in entries)


def test_ljspeech(tmp_path):
    root, texts, rejects = speech_corpora.ljspeech(tmp_path)
    out = tmp_path / "lj.jsonl.gz"
    report = import_corpus("ljspeech", root, out, workers=1)
    entries = _check_import(report, out, texts, rejects, lambda e: Path(e["path"]).name)
    raw = {e["id"]: e["raw_text"] for e in entries}
    assert raw["LJ002-0026"] == "in the year 1760"
    assert {e["sample_rate"] for e in entries} == {22050}


def test_commonvoice_split(tmp_path):
    root, texts, rejects = speech_corpora.commonvoice(tmp_path)
    out = tmp_path / "cv.jsonl.gz"
    report = import_corpus("commonvoice", root, out, workers=1)
    entries = _check_import(report, out, texts, rejects, lambda e: Path(e["path"]).name)
    first = next(e for e in entries if e["id"] == "common_voice_en_1")
    assert first["speaker"] == "a1b2" and first["gender"] == "male_masculine"
    assert first["accents"] == "United States English" and first["up_votes"] == 2
    assert first["format"] == "MP3" and first["split"] == "train"
    dev = tmp_path / "dev.jsonl.gz"
    import_corpus("commonvoice", root, dev, split="dev", workers=1)
    assert [e["text"] for e in read_manifest(dev)] == ["Only in the dev split."]
    with pytest.raises(LayoutError, match="splits here: dev, train"):
        import_corpus("commonvoice", root, dev, split="test")


@pytest.mark.parametrize("with_segments", [False, True])
def test_kaldi(tmp_path, with_segments):
    root, texts, rejects = speech_corpora.kaldi(tmp_path, with_segments)
    out = tmp_path / "kaldi.jsonl.gz"
    report = import_corpus("kaldi", root, out, workers=1)
    entries = _check_import(report, out, texts, rejects, lambda e: e["id"])
    assert all(e["speaker"] == "spk1" for e in entries)
    if with_segments:
        a, b = sorted(entries, key=lambda e: e["offset"])
        assert (a["offset"], a["duration"]) == (0.0, pytest.approx(1.2))
        assert (b["offset"], b["duration"]) == (1.2, pytest.approx(1.75))
        assert a["path"] == b["path"] and a["recording"] == "rec1"
    else:
        assert "offset" not in entries[0] and entries[0]["duration"] == pytest.approx(3.0)


def test_wrong_layout_is_one_line_exit_2(tmp_path, capsys):
    root, _, _ = speech_corpora.ljspeech(tmp_path)
    out = tmp_path / "x.jsonl.gz"
    assert cli(["manifest", "--layout", "kaldi", str(root), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no wav.scp" in err
    assert not out.exists()
    assert cli(["manifest", "--layout", "ljspeech", str(root), "-o", str(out)]) == 0
    assert len(read_manifest(out)) == 3
