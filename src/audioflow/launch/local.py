"""The default launcher: torchrun --standalone on this machine."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from .base import JobSpec, JobSpecError, Launcher


class LocalLauncher(Launcher):
    """Run a job with ``torchrun --standalone``, output appended to the job's log file.

    SIGTERM and SIGINT (Snakemake cancelling the rule, Ctrl-C) are forwarded to torchrun,
    which stops its workers, so no stage process outlives the rule that started it.
    """

    def launch(self, job: JobSpec) -> int:
        """Run the job here; the log file's folder is created if needed.

        Raises:
            JobSpecError: a multi-node job (this launcher has no other machines to use).
        """
        if job.nodes > 1:
            raise JobSpecError(
                f"--nodes {job.nodes}: the local launcher runs one node, this machine; "
                "use --nodes 1, or --launcher kubernetes for a multi-node job"
            )
        # audioflow's torchrun entry keeps a worker's config-error status (2), which plain
        # torchrun turns into 1, so Snakemake and users see why a stage refused to start.
        cmd = [sys.executable, "-m", "audioflow.launch.torchrun", *job.torchrun_args()[1:]]
        env = dict(os.environ)
        env.setdefault("OMP_NUM_THREADS", str(job.threads))
        if job.log_path:
            # Workflow rules name logs in folders that do not exist yet (logs/<sig>/...).
            Path(job.log_path).parent.mkdir(parents=True, exist_ok=True)
        log = open(job.log_path, "ab") if job.log_path else None  # noqa: SIM115 - closed below
        try:
            proc = subprocess.Popen(cmd, env=env, stdout=log or None, stderr=subprocess.STDOUT)

            def forward(signum, _frame):
                proc.send_signal(signum)

            previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
            try:
                return proc.wait()
            finally:
                for s, handler in previous.items():
                    signal.signal(s, handler)
        finally:
            if log:
                log.close()
