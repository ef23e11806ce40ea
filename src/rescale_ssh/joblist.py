"""The user's jobs (owned and shared) and whether each one accepts SSH.

Requests: the pages of ``/api/v2/jobs/``, plus the instance pages of each job whose cluster is
started, fetched through a bounded pool (design.md budget for ``sync``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from rescale_ssh import resolver, validate
from rescale_ssh.client import Client
from rescale_ssh.errors import InvalidValueError, RescaleSSHError
from rescale_ssh.target import Target, alias_for

CONCURRENCY = 8
READY, STARTING, STOPPED, WAITING = "ready", "starting", "stopped", "not started"


@dataclass(frozen=True)
class JobSummary:
    id: str
    name: str
    owner: str
    shared: bool | None
    submitted: str
    status: str
    cluster: str
    ssh: str  # READY, STARTING, STOPPED or WAITING
    target: Target | None = None
    problem: str | None = None  # why a started cluster is not usable (invalid data, error)
    notes: list[str] = field(default_factory=list)

    @property
    def alias(self) -> str:
        return alias_for(self.id)

    @property
    def running(self) -> bool:
        return self.ssh in (READY, STARTING)


def list_jobs(
    client: Client,
    *,
    probe: bool = True,
    concurrency: int = CONCURRENCY,
    keep: Callable[[str], bool] | None = None,
) -> list[JobSummary]:
    """Every job on the platform, running ones first, then newest first.

    With ``probe`` the instances of each job with a started cluster are fetched (and ``keep``,
    when given, limits that to the jobs it accepts).
    """
    rows = [row for row in (_summary(item) for item in client.paged(
        "/api/v2/jobs/", what="the list of jobs")) if row is not None]
    started = [row for row in rows if row.ssh == STARTING and (keep is None or keep(row.id))]
    if probe and started:
        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            probed = dict(zip([row.id for row in started],
                              pool.map(lambda row: _probe(client, row), started), strict=True))
        rows = [probed.get(row.id, row) for row in rows]
    return sorted(rows, key=lambda r: (not r.running, _desc(r.submitted)))


def _desc(text: str) -> list[int]:
    return [-ord(c) for c in text]


def _content(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("content") or value.get("status") or value.get("displayStatus")
    return _printable(value) if isinstance(value, str) else ""


def _printable(value: str, limit: int = 120) -> str:
    return validate.shown(value, limit)


def _owner(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("email") or value.get("username") or value.get("name")
    return _printable(value) if isinstance(value, str) else ""


def _summary(item: dict[str, Any]) -> JobSummary | None:
    try:
        job = validate.job_id(item.get("id"), source="the list of jobs")
    except InvalidValueError:
        return None  # not something we could ever write a block for
    status = _content(item.get("jobStatus"))
    cluster = _content(item.get("clusterStatusDisplay") or item.get("clusterStatus"))
    shared_value = item.get("isShared", item.get("shared"))
    notes: list[str] = []
    state = ssh_state(status, cluster)
    if state == STARTING and is_final(status):
        notes.append(ended_note(job))
    return JobSummary(
        id=job,
        name=_printable(item.get("name") or "") if isinstance(item.get("name"), str) else "",
        owner=_owner(item.get("owner")),
        shared=shared_value if isinstance(shared_value, bool) else None,
        submitted=_printable(item.get("dateInserted") or "") if isinstance(
            item.get("dateInserted"), str) else "",
        status=status or "unknown",
        cluster=cluster or "unknown",
        ssh=state,
        notes=notes,
    )


def _probe(client: Client, row: JobSummary) -> JobSummary:
    try:
        instances = list(client.paged(f"/api/v2/jobs/{row.id}/instances/",
                                      what=f"job {row.id}"))
        head = resolver.head_node(instances)
        if head is None:
            return row
        target = Target.checked(
            job=row.id, user=head.get("username"),
            host=head.get("publicIp") or head.get("publicHostname"),
            port=head.get("sshPort"), workdir=None, source=f"the platform (job {row.id})",
            workers=resolver.worker_hosts(instances, head),
        )
    except RescaleSSHError as error:
        return _replace(row, problem=error.message)
    return _replace(row, ssh=READY, target=target)


def _replace(row: JobSummary, **changes: Any) -> JobSummary:
    from dataclasses import replace

    return replace(row, **changes)


def _norm(value: str) -> str:
    return value.strip().lower().replace("_", " ")


FINAL_JOB = ("completed", "failed", "terminated", "force stop", "stopped", "cancelled")
CLUSTER_DOWN = ("stopped", "stopping", "stop requested")


def is_final(status: str) -> bool:
    return _norm(status) in FINAL_JOB


def ssh_state(status: str, cluster: str) -> str:
    """From the two statuses alone (instances refine STARTING into READY)."""
    if _norm(cluster) in CLUSTER_DOWN:
        return STOPPED
    if _norm(cluster) in ("started", "starting"):
        return STARTING
    return STOPPED if is_final(status) else WAITING


def ended_note(job: str) -> str:
    return (f"job {job} has completed but its cluster is still up: open sessions end when the "
            "cluster stops")


def by_id(rows: Iterable[JobSummary]) -> dict[str, JobSummary]:
    return {row.id: row for row in rows}
