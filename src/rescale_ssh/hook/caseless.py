"""'Did you mean rescale-Fotxeb?': a job ID that differs only in case from one we know.

Job IDs are case-sensitive (``Fotxeb`` and ``fotxeb`` are two jobs), and users type aliases in
lower case; ssh compares host patterns without case. When the platform knows no job by the name
given, the jobs known here (added: ssh.conf's policy line names them; reached through the hook:
its records) that differ only in case are named in the hint, in the CLI and in the hook's
failure (its proxy prints it). Standard library only: the hook uses it.
"""

from __future__ import annotations

import os

from rescale_ssh.casehint import with_hint
from rescale_ssh.hook import jobcache
from rescale_ssh.sshconfig import included


def known(state_dir: str) -> list[str]:
    """The jobs this machine knows: added (blocks) and reached through the hook (records)."""
    jobs = set(jobcache.cached_jobs(state_dir)) if os.path.isdir(state_dir) else set()
    for alias in included.static_aliases(included.read(state_dir)):
        job = alias[len("rescale-"):]
        if job.isascii() and job.isalnum():
            jobs.add(job)
    return sorted(jobs)


def hint(job: str, state_dir: str, fallback: str | None) -> str | None:
    """The hint for 'job not found': a job known here by another case first."""
    if fallback and fallback.startswith("did you mean"):
        return fallback  # the platform's live list named one already
    try:
        jobs = known(state_dir)
    except OSError:
        jobs = []
    return with_hint(job, jobs, fallback)
