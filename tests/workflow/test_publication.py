"""Publication records: a reference pointed at another XP is published again."""

import json
import os

from audioflow.workflow.publication import publication_record, published_signature

from .test_snakefile import DEMO, finish_all, job_counts, plans, snakemake, write_config


def _reference(folder, sig, when):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metadata.json").write_text(json.dumps({"signature": sig}))
    for path in (folder / "metadata.json", folder):
        os.utime(path, (when, when))


def test_record_changes_only_with_the_selection(tmp_path):
    records, reference = tmp_path / "records", tmp_path / "reference" / "ref"
    first = publication_record(records, "ref", "aaaa1111", reference)
    assert first.read_text() == "aaaa1111\n"
    os.utime(first, (1_000, 1_000))
    assert publication_record(records, "ref", "aaaa1111", reference).stat().st_mtime == 1_000
    assert publication_record(records, "ref", "bbbb2222", reference).stat().st_mtime > 1_000
    # A first record for a reference that already holds the XP is dated back.
    _reference(reference, "cccc3333", 2_000)
    assert published_signature(reference) == "cccc3333"
    fresh = publication_record(tmp_path / "new", "ref", "cccc3333", reference)
    assert fresh.stat().st_mtime == 0


def test_pointing_publish_at_an_older_xp_publishes_it(tmp_path):
    other = [*DEMO, "seed=5"]
    xps = [{"name": "demo", "overrides": DEMO}, {"name": "other", "overrides": other}]
    config = write_config(tmp_path, xps=xps, publish=[{"xp": "demo", "as": "ref"}])
    assert snakemake(tmp_path, "-n", "--configfile", str(config)).returncode == 0
    demo_sig, other_sig = plans(tmp_path)[tuple(DEMO)]["sig"], plans(tmp_path)[tuple(other)]["sig"]
    finish_all(tmp_path, other_sig, 3)  # trained first
    finish_all(tmp_path, demo_sig, 3)
    _reference(tmp_path / "reference" / "ref", demo_sig, 1_750_000_000)
    for name in ("metrics.json", "history.csv"):
        (tmp_path / "reports" / "ref").mkdir(parents=True, exist_ok=True)
        (tmp_path / "reports" / "ref" / name).write_text("{}")
        os.utime(tmp_path / "reports" / "ref" / name, (1_750_000_000, 1_750_000_000))
    os.utime(tmp_path / ".snakemake" / "audioflow" / "published" / "ref.sig", (0, 0))
    done = snakemake(tmp_path, "-n", "--configfile", str(config))
    assert "Nothing to be done" in done.stdout + done.stderr, done.stdout
    config = write_config(tmp_path, xps=xps, publish=[{"xp": "other", "as": "ref"}])
    counts = job_counts(snakemake(tmp_path, "-n", "--configfile", str(config)).stdout)
    assert counts == {"publish": 1, "dvc_report": 1, "all": 1}
