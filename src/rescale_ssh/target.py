"""Where a job's SSH server is: the validated result of resolving a job.

A plain class rather than a dataclass: the ssh hook builds targets on every run, and
``dataclasses`` imports ``inspect`` (several milliseconds).
"""

from __future__ import annotations

from rescale_ssh import validate

ALIAS_PREFIX = "rescale-"


def alias_for(job: str) -> str:
    return ALIAS_PREFIX + job


def worker_alias(job: str, index: int) -> str:
    """Worker ``index`` (from 1) of a multi-node cluster: ``rescale-<JOB>-<n>``."""
    return f"{ALIAS_PREFIX}{job}-{index}"


def job_from_alias(alias: str, *, source: str | None = None) -> str:
    """``rescale-Fotxeb`` (or a worker, ``rescale-Fotxeb-2``) -> ``Fotxeb``; a bare job ID is
    accepted as well. Job IDs are letters and digits, so the ``-<n>`` suffix is unambiguous."""
    job = alias[len(ALIAS_PREFIX) :] if alias.startswith(ALIAS_PREFIX) else alias
    head, dash, number = job.rpartition("-")
    if dash and number.isascii() and number.isdigit() and head:
        job = head
    return validate.job_id(job, source=source)


def default_workdir(user: str) -> str:
    # rescale-api.md: the layout /enc/<username>/work is HIGH confidence.
    return f"/enc/{user}/work"


Worker = tuple[str, int, bool]  # address, port, reached through the head (ProxyJump)


class Target:
    """The head node (``host``, ``port``) and the workers, if any, each with its route: its
    own public address and port (reached directly), or its private address on port 22 through
    the head (ProxyJump): resolver.routes."""

    __slots__ = ("host", "job", "port", "user", "workdir", "workers")

    def __init__(self, job: str, user: str, host: str, port: int, workdir: str,
                 workers: tuple[Worker, ...] = ()) -> None:
        self.job = job
        self.user = user
        self.host = host
        self.port = port
        self.workdir = workdir
        self.workers = workers

    def _key(self) -> tuple[str, str, str, int, str, tuple[Worker, ...]]:
        return (self.job, self.user, self.host, self.port, self.workdir, self.workers)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Target) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (f"Target(job={self.job!r}, user={self.user!r}, host={self.host!r}, "
                f"port={self.port!r}, workdir={self.workdir!r}, workers={self.workers!r})")

    @property
    def alias(self) -> str:
        return alias_for(self.job)

    @classmethod
    def checked(
        cls,
        *,
        job: object,
        user: object,
        host: object,
        port: object,
        workdir: object | None,
        source: str,
        workers: tuple[tuple[object, ...], ...] = (),
    ) -> Target:
        """Validate every field (naming the failing one and where it came from). A worker is
        ``(address, port)`` (through the head: what earlier versions knew) or ``(address,
        port, through_head)``."""
        checked_user = validate.user(user, source=source)
        return cls(
            job=validate.job_id(job, source=source),
            user=checked_user,
            host=validate.host(host, source=source),
            port=validate.port(22 if port is None else port, source=source),
            workdir=validate.remote_path(
                default_workdir(checked_user) if workdir is None else workdir, source=source
            ),
            workers=tuple(
                (validate.host(worker[0], source=source),
                 validate.port(22 if worker[1] is None else worker[1], source=source),
                 worker[2] is not False if len(worker) > 2 else True)
                for worker in workers
            ),
        )
