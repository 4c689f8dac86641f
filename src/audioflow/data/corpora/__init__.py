"""Importers of the layouts speech corpora ship with: each turns a corpus folder into a
manifest (one line per utterance, with its transcript) and a rejects file.

``LAYOUTS`` maps a layout name to the module that reads it; a module defines
``read_layout(root, split) -> Listing`` (what the corpus's own index files list) and
``common.write_listing`` probes the audio and writes both files. Layouts:

- ``librispeech``: ``<speaker>/<chapter>/<speaker>-<chapter>.trans.txt`` + ``.flac``;
- ``ljspeech``: ``metadata.csv`` (``id|raw text|normalized text``) + ``wavs/<id>.wav``;
- ``commonvoice``: ``<split>.tsv`` (client_id, path, sentence, ...) + ``clips/``;
- ``kaldi``: a data folder with ``wav.scp`` and ``text`` (``segments``, ``utt2spk``
  when present).

See docs/data.md ("Speech corpus layouts").
"""

from __future__ import annotations

import importlib
from pathlib import Path

LAYOUTS: dict[str, str] = {
    "librispeech": "audioflow.data.corpora.librispeech",
    "ljspeech": "audioflow.data.corpora.ljspeech",
    "commonvoice": "audioflow.data.corpora.commonvoice",
    "kaldi": "audioflow.data.corpora.kaldi",
}


def import_corpus(
    layout: str,
    root: str | Path,
    output: str | Path,
    *,
    split: str | None = None,
    rejects: str | Path | None = None,
    workers: int | None = None,
):
    """Import the corpus at ``root`` (laid out as ``layout``) into a manifest.

    Args:
        layout: a key of ``LAYOUTS``.
        root: the corpus folder (see each layout for which folder that is).
        output: manifest to write (``.jsonl.gz``).
        split: the part to import where a layout has several in one folder (Common
            Voice: ``train``, ``dev``, ``test``, ``validated``...); None: its default.
        rejects: rejects file (default: beside the manifest).
        workers: probe processes (default: the CPUs this process may use).

    Returns:
        A ``ManifestReport``.

    Raises:
        LayoutError: unknown layout, a folder that is not in that layout, or an index
            file that is not UTF-8; the message names the file.
        ValueError: no usable utterance (no manifest is written then).
        FileNotFoundError: ``root`` does not exist.
    """
    from audioflow.data.corpora.common import LayoutError, write_listing

    if layout not in LAYOUTS:
        raise LayoutError(f"--layout {layout}: unknown; choose one of {', '.join(LAYOUTS)}")
    root = Path(root).absolute()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such corpus folder")
    listing = importlib.import_module(LAYOUTS[layout]).read_layout(root, split)
    return write_listing(listing, output, rejects=rejects, workers=workers)
