"""Small speech corpora written in the exact layout of the real ones (never downloaded).

Each writer returns the corpus folder and what a correct import must find: the
transcript of every usable utterance and the reason prefix of every reject.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf


def _audio(path: Path, seconds: float, sample_rate: int = 16000, fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    wav = (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    sf.write(path, wav, sample_rate, format=fmt)


def librispeech(root: Path) -> tuple[Path, dict[str, str], dict[str, str]]:
    """``LibriSpeech/dev-clean/<spk>/<chapter>/`` with trans.txt files and SPEAKERS.TXT."""
    base = root / "LibriSpeech"
    subset = base / "dev-clean"
    (base / "SPEAKERS.TXT").parent.mkdir(parents=True, exist_ok=True)
    (base / "SPEAKERS.TXT").write_text(
        "; Some of the speakers' names\n"
        ";ID  |SEX| SUBSET           |MINUTES| NAME\n"
        "84   | F | dev-clean        | 8.02 | Christie Nowak\n"
        "174  | M | dev-clean        | 8.04 | Peter Eastman\n"
    )
    texts = {
        "84-121123-0000": "GO DO YOU HEAR",
        "84-121123-0001": "BUT IN LESS THAN FIVE MINUTES THE STAIRCASE GROANED",
        "174-50561-0000": "FORGOTTEN TOO THE NAME OF GILLIAN THE LOVELY CAPTIVE",
    }
    for utt in texts:
        spk, chapter, _ = utt.split("-")
        _audio(subset / spk / chapter / f"{utt}.flac", 0.5)
    (subset / "84/121123/84-121123.trans.txt").write_text(
        "84-121123-0000 GO DO YOU HEAR\n"
        "84-121123-0001 BUT IN LESS THAN FIVE MINUTES THE STAIRCASE GROANED\n"
        "84-121123-0002 LISTED BUT NEVER RECORDED\n"
    )
    (subset / "174/50561/174-50561.trans.txt").write_text(
        "174-50561-0000 FORGOTTEN TOO THE NAME OF GILLIAN THE LOVELY CAPTIVE\n"
    )
    _audio(subset / "174/50561/174-50561-0001.flac", 0.5)  # no line in the trans.txt
    rejects = {
        "84-121123-0002.flac": "missing audio",
        "174-50561-0001.flac": "no transcript",
    }
    return subset, {f"{k}.flac": v for k, v in texts.items()}, rejects


def ljspeech(root: Path) -> tuple[Path, dict[str, str], dict[str, str]]:
    """``LJSpeech-1.1/metadata.csv`` (id|raw|normalized, quotes unescaped) + ``wavs/``."""
    base = root / "LJSpeech-1.1"
    base.mkdir(parents=True)
    (base / "metadata.csv").write_text(
        "LJ001-0001|Printing, in the only sense with which we are at present concerned,"
        "|Printing, in the only sense with which we are at present concerned,\n"
        'LJ001-0002|in being comparatively modern."|in being comparatively modern."\n'
        "LJ002-0026|in the year 1760|in the year seventeen sixty\n"
        "LJ003-0001|a line whose audio is gone|a line whose audio is gone\n"
    )
    for utt in ("LJ001-0001", "LJ001-0002", "LJ002-0026", "LJ009-0009"):
        _audio(base / "wavs" / f"{utt}.wav", 0.4, 22050)
    texts = {
        "LJ001-0001.wav": "Printing, in the only sense with which we are at present concerned,",
        "LJ001-0002.wav": 'in being comparatively modern."',
        "LJ002-0026.wav": "in the year seventeen sixty",
    }
    return base, texts, {"LJ003-0001.wav": "missing audio", "LJ009-0009.wav": "no transcript"}


CV_HEADER = (
    "client_id\tpath\tsentence_id\tsentence\tsentence_domain\tup_votes\tdown_votes\tage\t"
    "gender\taccents\tvariant\tlocale\tsegment"
)


def commonvoice(root: Path) -> tuple[Path, dict[str, str], dict[str, str]]:
    """``cv-corpus-17.0/en/`` with ``clips/*.mp3`` and train/dev tsv files (release 17 columns)."""
    base = root / "cv-corpus-17.0-2024-03-15" / "en"
    clips = {
        "common_voice_en_1.mp3": "The boy looked out at the horizon.",
        "common_voice_en_2.mp3": 'She said "no" twice.',
        "common_voice_en_3.mp3": "",
        "common_voice_en_4.mp3": "Only in the dev split.",
    }
    for name in clips:
        _audio(base / "clips" / name, 0.6, 48000, "MP3")
    rows = [
        ("a1b2", "common_voice_en_1.mp3", "s1", clips["common_voice_en_1.mp3"], "", "2", "0",
         "twenties", "male_masculine", "United States English", "", "en", ""),
        ("c3d4", "common_voice_en_2.mp3", "s2", clips["common_voice_en_2.mp3"], "", "3", "1",
         "", "", "", "", "en", ""),
        ("c3d4", "common_voice_en_3.mp3", "s3", "", "", "2", "0", "", "", "", "", "en", ""),
        ("e5f6", "common_voice_en_9.mp3", "s9", "A clip that is not there.", "", "2", "0",
         "", "", "", "", "en", ""),
    ]  # fmt: skip
    (base / "train.tsv").write_text(
        CV_HEADER + "\n" + "".join("\t".join(r) + "\n" for r in rows), encoding="utf-8"
    )
    dev = ("g7h8", "common_voice_en_4.mp3", "s4", clips["common_voice_en_4.mp3"], "", "2", "0",
           "", "", "", "", "en", "")  # fmt: skip
    (base / "dev.tsv").write_text(CV_HEADER + "\n" + "\t".join(dev) + "\n", encoding="utf-8")
    texts = {k: v for k, v in clips.items() if v and k != "common_voice_en_4.mp3"}
    rejects = {"common_voice_en_3.mp3": "no transcript", "common_voice_en_9.mp3": "missing audio"}
    return base, texts, rejects


def kaldi(root: Path, with_segments: bool) -> tuple[Path, dict[str, str], dict[str, str]]:
    """A Kaldi data folder (wav.scp, text, utt2spk, optionally segments) over real WAVs.

    Returns texts keyed by utterance id (a recording holds several with segments).
    """
    audio = root / "audio"
    _audio(audio / "rec1.wav", 3.0)
    _audio(audio / "rec2.wav", 2.0)
    data = root / "data" / "train"
    data.mkdir(parents=True)
    (data / "wav.scp").write_text(
        f"rec1 {audio / 'rec1.wav'}\nrec2 {audio / 'rec2.wav'}\n"
        f"rec3 sox {audio / 'rec3.flac'} -t wav - |\n"
    )
    if with_segments:
        (data / "segments").write_text(
            "rec1-a rec1 0.00 1.20\nrec1-b rec1 1.20 2.95\nrec2-a rec2 0.10 1.50\n"
            "rec2-b rec2 1.50 9.00\n"
        )
        (data / "text").write_text(
            "rec1-a HELLO THERE\nrec1-b GENERAL KENOBI\nrec2-b TOO LONG A SEGMENT\n"
            "rec9-a NO SUCH SEGMENT\n"
        )
        (data / "utt2spk").write_text("rec1-a spk1\nrec1-b spk1\nrec2-a spk2\nrec2-b spk2\n")
        texts = {"rec1-a": "HELLO THERE", "rec1-b": "GENERAL KENOBI"}
        rejects = {
            "rec2-a": "no transcript",
            "rec2-b": "bad segment",
            "rec9-a": "missing audio",
            "rec3": "unsupported",
        }
    else:
        (data / "text").write_text("rec1 HELLO THERE\nrec3 PIPED AUDIO\n")
        (data / "utt2spk").write_text("rec1 spk1\nrec2 spk2\n")
        texts = {"rec1": "HELLO THERE"}
        rejects = {"rec2": "no transcript", "rec3": "unsupported"}
    return data, texts, rejects
