"""Resolution of a job to a validated :class:`Target` (rescale-api.md, "Resolving a job").

Common case, two requests: the instances list (head node by role, any page), then the job logs
for the working directory. An empty instances list means the cluster is not up: the job's
status explains why. The log line alone is trusted only while the job is running, because the
logs keep the "ready for ssh access" line after the cluster has stopped.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from rescale_ssh import loglines, validate
from rescale_ssh.client import Client
from rescale_ssh.errors import (
    InvalidValueError,
    NotFoundError,
    NotReadyError,
    PlatformError,
    RescaleSSHError,
)
from rescale_ssh.target import Target

HEAD_ROLES = ("mpi master", "master", "head")  # compared after _norm()
RUNNING_STATUSES = ("started", "validated", "executing", "running")
LOG_TEXT_KEYS = ("message", "text", "line", "content")


@dataclass(frozen=True)
class Status:
    job: str | None
    cluster: str | None

    def describe(self, job_id: str) -> str:
        job = self.job or "in an unknown state"
        if self.cluster and _norm(self.cluster) in ("stopped", "stopping", "stop requested"):
            return f"job {job_id} is {job}; its cluster is {self.cluster.lower()}"
        if _norm(job) in ("completed", "failed", "terminated", "force stop", "stopping"):
            return f"job {job_id} is {job}; its cluster is not running"
        return f"job {job_id} is {job}; the cluster is not started yet"


def resolve(client: Client, job: str) -> Target:
    job = validate.job_id(job)
    source = f"the platform (job {job})"
    try:
        instances = list(client.paged(f"/api/v2/jobs/{job}/instances/", what=f"job {job}"))
    except NotFoundError:
        # An old platform without the endpoint also answers 404: tell the two apart.
        _job_detail(client, job)
        instances = []
    head = head_node(instances)
    line = None
    if head is None:
        status = statuses(client, job)
        if not _is_running(status):
            raise NotReadyError(status.describe(job), f"`rescale-ssh wait {job}` waits for it")
        line = _log_line(client, job, newest=True)
        if line is None:
            raise NotReadyError(
                f"job {job} is {status.job}, but its cluster does not accept SSH yet",
                f"`rescale-ssh wait {job}` waits for it",
            )
        return target_from_line(job, line, source=f"the job logs of {job}")
    host = head.get("publicIp") or head.get("publicHostname")
    user = head.get("username")
    try:
        line = _log_line(client, job)
    except (PlatformError, NotFoundError):
        line = None  # the working directory falls back to /enc/<user>/work
    if line is not None and line.unexpected is not None:
        line = None  # not a line the platform writes: nothing is taken from it
    if user is None and line is not None:
        user = line.user
    if user is None:
        raise PlatformError(f"the platform did not say which user to log in as for job {job}",
                            "use `rescale-ssh add JOB --from-log` with the job's SSH line")
    workdir = line.workdir if line is not None and line.user == user else None
    return Target.checked(job=job, user=user, host=host, port=head.get("sshPort"),
                          workdir=workdir, source=source, workers=worker_hosts(instances, head))


def head_node(instances: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The head node: role MPI_MASTER, or the only instance; it must have a public address."""
    reachable = [i for i in instances if i.get("publicIp") or i.get("publicHostname")]
    for instance in reachable:
        if _norm(instance.get("role")) in HEAD_ROLES:
            return instance
    if len(instances) == 1 and reachable:
        return reachable[0]
    unlabeled = [i for i in reachable if not i.get("role")]
    return unlabeled[0] if unlabeled else None


PRIVATE_ADDRESS_KEYS = ("privateIp", "privateIpAddress", "private_ip", "privateHostname")
PUBLIC_ADDRESS_KEYS = ("publicIp", "publicHostname")


def worker_hosts(
    instances: list[dict[str, Any]], head: dict[str, Any]
) -> tuple[tuple[object, object], ...]:
    """Addresses (and SSH ports) of the other nodes, in the platform's order: the private
    address when one is given (reached through the head node), else the public one. A node with
    neither is left out: no block can reach it (README, "Multi-node clusters")."""
    hosts: list[tuple[object, object]] = []
    for instance in instances:
        if instance is head:
            continue
        address = next((instance[k] for k in PRIVATE_ADDRESS_KEYS if instance.get(k)), None)
        if address is None:
            address = next((instance[k] for k in PUBLIC_ADDRESS_KEYS if instance.get(k)), None)
        if address is not None:
            hosts.append((address, instance.get("sshPort")))
    return tuple(hosts)


def statuses(client: Client, job: str) -> Status:
    return Status(
        job=_newest(client, f"/api/v2/jobs/{job}/statuses/", f"the statuses of job {job}"),
        cluster=_newest(
            client, f"/api/v2/jobs/{job}/cluster_statuses/", f"the cluster of job {job}",
            optional=True,
        ),
    )


def log_texts(entries: Iterable[Any]) -> Iterator[str]:
    for entry in entries:
        if isinstance(entry, str):
            yield entry
        elif isinstance(entry, dict):
            for key in LOG_TEXT_KEYS:
                if isinstance(entry.get(key), str):
                    yield entry[key]
                    break


def from_log(job: str, text: str, *, source: str = "the log text") -> Target:
    """A target from the job's SSH line, found anywhere in ``text`` (no platform needed)."""
    job = validate.job_id(job, source="the command line")
    line = loglines.find(text)
    if line is None:
        raise NotFoundError(
            "no 'Instance ready for ssh access. Command: ssh ...' line in the log text",
            "copy the line from the job's Status → Job Logs in the Rescale web UI",
        )
    return target_from_line(job, line, source=source)


def target_from_line(job: str, line: loglines.SSHLine, *, source: str) -> Target:
    if line.unexpected is not None:
        raise InvalidValueError("ssh command", line.unexpected,
                                "only -i KEY, -p PORT, -l USER and -o Port=N besides user@host",
                                source=source)
    return Target.checked(job=job, user=line.user, host=line.host, port=line.port,
                          workdir=line.workdir, source=source)


def _log_line(client: Client, job: str, *, newest: bool = False) -> loglines.SSHLine | None:
    """The SSH line of the job's logs: the first one (one page in the common case), or with
    ``newest`` the last one, for a cluster that may have been replaced."""
    entries = client.paged(f"/api/v3/jobs/{job}/logs/", what=f"the logs of job {job}",
                           params={"limit": 10000, "page_size": 1000})
    found = None
    for text in log_texts(entries):
        found = loglines.parse(text) or found  # one entry is one line
        if found is not None and not newest:
            break
    return found


def _newest(client: Client, path: str, what: str, *, optional: bool = False) -> str | None:
    try:
        for entry in client.paged(path, what=what):
            value = entry.get("status")
            # Shown in messages: no escape sequence or line break of the platform's reaches
            # the terminal.
            return validate.shown(value, 80) if isinstance(value, str) else None
    except RescaleSSHError:
        if not optional:
            raise
    return None


def _job_detail(client: Client, job: str) -> None:
    client.get(f"/api/v2/jobs/{job}/", what=f"job {job}")  # raises NotFoundError


def _is_running(status: Status) -> bool:
    if status.cluster and _norm(status.cluster) in ("stopped", "stopping", "stop requested",
                                                    "not started"):
        return False
    return _norm(status.job) in RUNNING_STATUSES


def _norm(value: object) -> str:
    return value.strip().lower().replace("_", " ") if isinstance(value, str) else ""
