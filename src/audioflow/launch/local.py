"""The default launcher: torchrun --standalone on this machine."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from .base import JobSpec, Launcher


class LocalLauncher(Launcher):
    """Run a job with ``torchrun --standalone``, output appended to the job's log file.

    SIGTERM and SIGINT (Snakemake cancelling the rule, Ctrl-C) are forwarded to torchrun,
    which stops its workers, so no stage process outlives the rule that started it.
    """

    def launch(self, job: JobSpec) -> int:
        # audioflow's torchrun entry keeps a worker's config-error status (2), which plain
        # torchrun turns into 1, so Snakemake and users see why a stage refused to start.
        cmd = [sys.executable, "-m", "audioflow.launch.torchrun", *job.torchrun_args()[1:]]
        env = dict(os.environ)
        env.setdefault("OMP_NUM_THREADS", str(job.threads))
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
