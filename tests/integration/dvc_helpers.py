"""Helpers for the DVC integration tests: run dvc/git in a folder, a moto S3 server."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
BUCKET = "audioflow-test"


def run(*args: str, cwd: Path, check: bool = True, env: dict | None = None):
    """Run a command (``dvc`` resolves to the venv's), return the CompletedProcess."""
    cmd = [str(BIN / "dvc"), *args[1:]] if args[0] == "dvc" else list(args)
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def s3_env(max_attempts: int | None = None) -> dict:
    """Environment with dummy credentials: moto accepts any, nothing is committed.

    Args:
        max_attempts: botocore's attempts per request. Retries suit a real store; against
            a server the test killed on purpose they only stretch each failed file's wait.
    """
    env = dict(os.environ)
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    if max_attempts is not None:
        env["AWS_MAX_ATTEMPTS"] = str(max_attempts)
    return env


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def tree_digest(root: Path) -> dict[str, str]:
    """Relative path → md5 for every file under ``root``."""
    return {str(p.relative_to(root)): md5(p) for p in sorted(root.rglob("*")) if p.is_file()}


def corrupt_cache_files(repo: Path) -> list[Path]:
    """Cache files whose content does not match the md5 in their name (must be none)."""
    bad = []
    for path in (repo / ".dvc" / "cache" / "files" / "md5").rglob("*"):
        if path.is_file() and not path.name.endswith(".dir"):
            if path.parent.name + path.name != md5(path):
                bad.append(path)
    return bad
