"""DVC against a real S3-compatible server (moto) on 127.0.0.1: push, pull, faults.

The server is moto's ThreadedMotoServer, as dvc-s3's own tests use; DVC talks to it
through dvc-s3 and s3fs exactly as it would talk to AWS or MinIO via `endpointurl`.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from pathlib import Path

import boto3
import numpy as np
import pytest
import soundfile as sf

from .dvc_helpers import BIN, BUCKET, corrupt_cache_files, run, s3_env, tree_digest

pytest.importorskip("moto.server")


class S3Server:
    """A moto S3 server process on 127.0.0.1 that can be killed and restarted on one port.

    A separate process (not moto's in-process thread) so that "the remote goes down" is
    a real SIGKILL: open connections are reset at once, as when a store becomes unreachable.
    """

    def __init__(self):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.proc = None

    def start(self) -> str:
        cmd = [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self.url
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"moto_server did not listen on port {self.port}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self):
        return boto3.client("s3", endpoint_url=self.url, **_creds())

    def keys(self) -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
        return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def _creds() -> dict:
    env = s3_env()
    return {
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
        "region_name": env["AWS_DEFAULT_REGION"],
    }


@pytest.fixture
def s3():
    server = S3Server()
    server.start()
    server.client().create_bucket(Bucket=BUCKET)
    yield server
    server.stop()


def _write_corpus(root: Path, n: int, seconds: float = 0.5) -> None:
    """Real FLAC files of noise-modulated tones, different per index."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    t = np.arange(int(16000 * seconds)) / 16000
    for i in range(n):
        wav = 0.3 * np.sin(2 * np.pi * (200 + 20 * i) * t) + 0.05 * rng.standard_normal(t.size)
        sf.write(root / f"clip_{i:03d}.flac", wav.astype(np.float32), 16000)


def _init_repo(repo: Path, url: str) -> None:
    repo.mkdir()
    env = s3_env()
    run("git", "init", "-q", cwd=repo)
    run("git", "config", "user.email", "ci@example.com", cwd=repo)
    run("git", "config", "user.name", "ci", cwd=repo)
    run("dvc", "init", "-q", cwd=repo, env=env)
    run("dvc", "remote", "add", "-d", "s3", f"s3://{BUCKET}/store", cwd=repo)
    run("dvc", "remote", "modify", "s3", "endpointurl", url, cwd=repo)


def _short_timeouts(repo: Path) -> None:
    """Long timeouts suit a real store; against a dead local server they only delay."""
    for key in ("connect_timeout", "read_timeout"):
        run("dvc", "remote", "modify", "--local", "s3", key, "5", cwd=repo)


def _pushed_corpus_and_clone(tmp_path: Path, url: str, n: int, env: dict) -> tuple[Path, Path]:
    """A repo tracking an n-file corpus pushed to the remote, and a git clone of it."""
    repo = tmp_path / "repo"
    _init_repo(repo, url)
    _write_corpus(repo / "data" / "corpus", n=n)
    run("dvc", "add", "data/corpus", cwd=repo, env=env)
    run("dvc", "push", cwd=repo, env=env)
    run("git", "add", "-A", cwd=repo)
    run("git", "commit", "-qm", "track corpus", cwd=repo)
    clone = tmp_path / "clone"
    run("git", "clone", "-q", str(repo), str(clone), cwd=tmp_path)
    return repo, clone


def test_push_pull_fresh_clone_same_checksums(tmp_path, s3):
    env = s3_env()
    repo, clone = _pushed_corpus_and_clone(tmp_path, s3.url, 12, env)
    assert not (clone / "data" / "corpus").exists()
    run("dvc", "pull", cwd=clone, env=env)
    assert tree_digest(clone / "data" / "corpus") == tree_digest(repo / "data" / "corpus")
    assert len(tree_digest(clone / "data" / "corpus")) == 12


def test_push_interrupted_by_server_stop_fails_clearly_then_retry_completes(tmp_path, s3):
    repo = tmp_path / "repo"
    _init_repo(repo, s3.url)
    _write_corpus(repo / "data" / "corpus", n=60, seconds=1.0)
    env = s3_env(max_attempts=1)
    run("dvc", "add", "data/corpus", cwd=repo, env=env)
    _short_timeouts(repo)

    stopped = threading.Event()

    def stop_after_first_upload():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if s3.keys():
                s3.stop()
                stopped.set()
                return
            time.sleep(0.01)

    watcher = threading.Thread(target=stop_after_first_upload)
    watcher.start()
    push = run("dvc", "push", "-j", "1", cwd=repo, env=env, check=False)
    watcher.join()

    assert stopped.is_set(), "the push finished before the server could be stopped"
    assert push.returncode != 0
    # DVC names the unreachable endpoint; nothing else in its output is ours to reword.
    assert f'Could not connect to the endpoint URL: "{s3.url}' in push.stderr
    assert corrupt_cache_files(repo) == []
    assert len(tree_digest(repo / "data" / "corpus")) == 60

    s3.start()  # same port; a fresh moto process has lost the bucket, as a wiped store would
    s3.client().create_bucket(Bucket=BUCKET)
    run("dvc", "push", cwd=repo, env=env)
    assert len(s3.keys()) == 61  # 60 files and the directory listing
    status = run("dvc", "status", "-c", cwd=repo, env=env)
    assert "in sync" in status.stdout


def test_pull_with_server_down_fails_clearly_and_leaves_no_partial_files(tmp_path, s3):
    env = s3_env(max_attempts=1)
    repo, clone = _pushed_corpus_and_clone(tmp_path, s3.url, 5, env)
    _short_timeouts(clone)

    s3.stop()
    pull = run("dvc", "pull", cwd=clone, env=env, check=False)
    assert pull.returncode != 0
    assert "failed to connect to s3" in pull.stderr
    assert not (clone / "data" / "corpus").exists() or not any(
        (clone / "data" / "corpus").iterdir()
    )

    s3.start()
    s3.client().create_bucket(Bucket=BUCKET)
    run("dvc", "push", cwd=repo, env=env)  # the restarted store starts empty
    run("dvc", "pull", cwd=clone, env=env)
    assert tree_digest(clone / "data" / "corpus") == tree_digest(repo / "data" / "corpus")
