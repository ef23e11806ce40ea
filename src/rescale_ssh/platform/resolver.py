"""Resolution of a job to a validated :class:`Target` (rescale-api.md, "Resolving a job").

Common case, two requests, sent at once (each on its own connection: background.py): the
instances list (every page; the head may be on any) and the job logs, for the working directory
and to tell which node is the head when the nodes' roles do not say (all ``CUSTOM``: the head
is the node the "Instance ready for ssh access" line names). An empty instances list means the
cluster is not up: the job's status explains why. The log line alone is trusted only while
the job is running, because the logs keep the "ready for ssh access" line after the cluster has
stopped.

Which node is the head (:func:`head_node`), in this order:
1. a node whose role says so (``MPI_MASTER``);
2. the node whose public address (and, when the line has ``-p``, port) the job's first "ready
   for ssh access" line names;
3. the only node;
4. else, among the nodes whose role is not a worker's (``MPI_SLAVE``), the one started first
   (``dateStarted``), then the first listed.
Only a node with a public address that offers ssh (``supportedServices``, when given) can be
the head. How each other node is reached (:func:`routes`): at its own public address and
``sshPort`` (NAT'd nodes: the port forwarded to it; a NAT'd node without an ``sshPort``, or
one whose address and port are the head's, has no public end of its own), else at its private
address through the head (ProxyJump), on its ``sshPort`` when it is not behind NAT and on 22
when it is (there the forwarded port is the public one, not sshd's inside). A node that offers
no ssh, has no address, or whose values fail validation gets no block, and the reason is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from rescale_ssh import validate
from rescale_ssh.errors import (
    InvalidValueError,
    JobEndedError,
    NotFoundError,
    NotReadyError,
    PlatformError,
    RescaleSSHError,
)
from rescale_ssh.platform import lifecycle, loglines
from rescale_ssh.platform.background import Background
from rescale_ssh.platform.client import Client
from rescale_ssh.target import Target

HEAD_ROLES = ("mpi master", "master", "head")  # compared after _norm()
WORKER_ROLES = ("mpi slave", "slave", "worker")
LOG_TEXT_KEYS = ("message", "text", "line", "content")


@dataclass(frozen=True)
class Status:
    job: str | None
    cluster: str | None

    def describe(self, job_id: str) -> str:
        job = self.job or "in an unknown state"
        if self.cluster and lifecycle.cluster_down(self.cluster):
            return f"job {job_id} is {job}; its cluster is {self.cluster.lower()}"
        if lifecycle.has_ended(self.job):
            return f"job {job_id} is {job}; its cluster is not running"
        if lifecycle.job_phase(self.job) == lifecycle.UNKNOWN and self.job:
            return f"job {job_id} is {job} (a status rescale-ssh does not know); its cluster " \
                   "does not accept SSH yet"
        return f"job {job_id} is {job}; the cluster is not started yet"


@dataclass(frozen=True)
class Resolution:
    """A job's target, and the nodes it has no block for, each with why (``status`` shows
    them)."""

    target: Target
    skipped: list[str] = field(default_factory=list)


def resolve(client: Client, job: str) -> Target:
    return plan(client, job).target


def plan(client: Client, job: str, *, status: Callable[[], Status] | None = None,
         case_hint: bool = True) -> Resolution:
    """``status``: where the job's statuses come from when they are needed (``status JOB``
    asks for them anyway, at the same time); ``case_hint``: on a 404, one more request for a
    live job of that ID in another case."""
    job = validate.job_id(job)
    try:
        return _plan(client, job, status or (lambda: statuses(client, job)))
    except NotFoundError as error:
        error.job = error.job or job
        if case_hint:
            error.hint = _live_case_hint(client, job, error.hint)
        raise


def _live_case_hint(client: Client, job: str, hint: str | None) -> str | None:
    """A live job whose ID differs only in case (one more request, on this error only)."""
    from rescale_ssh import casehint
    from rescale_ssh.platform import joblist

    try:
        live = joblist.live_ids(client)
    except RescaleSSHError:
        live = []
    return casehint.with_hint(job, live, hint)


def _plan(client: Client, job: str, status_of: Callable[[], Status]) -> Resolution:
    # The logs do not depend on the instances: asked for at once, on a connection of their own.
    with Background(lambda: _ssh_lines(client, job)) as logs:
        return _plan_with(client, job, logs, status_of)


def _plan_with(client: Client, job: str, logs: Background[list[loglines.SSHLine]],
               status_of: Callable[[], Status]) -> Resolution:
    source = f"the platform (job {job})"
    try:
        instances = list(client.paged(f"/api/v2/jobs/{job}/instances/", what=f"job {job}"))
    except NotFoundError:
        # An old platform without the endpoint also answers 404: tell the two apart.
        _job_detail(client, job)
        instances = []
    if not candidates(instances):
        status = status_of()
        if lifecycle.gone_for_good(status.job, status.cluster):
            raise JobEndedError(status.describe(job),
                                "submit the job again; SSH works only while its cluster runs")
        if not lifecycle.may_accept_ssh(status.job, status.cluster):
            raise NotReadyError(status.describe(job), f"`rescale-ssh wait {job}` waits for it")
        newest = logs.result()
        if not newest:
            raise NotReadyError(
                f"job {job} is {status.job}, but its cluster does not accept SSH yet",
                f"`rescale-ssh wait {job}` waits for it",
            )
        return Resolution(target_from_line(job, newest[-1], source=f"the job logs of {job}"))
    lines = usable(logs.result)  # none: the working directory falls back to /enc/<user>/work
    head = head_node(instances, lines)
    if head is None:  # candidates() found one, so head_node does: kept for the type checker
        raise PlatformError(f"the platform listed no head node for job {job}")
    line = line_of(head, lines)
    user = head.get("username")
    if user is None and line is not None:
        user = line.user  # a value the platform sent, even an empty one, is validated
    if user is None:
        raise PlatformError(f"the platform did not say which user to log in as for job {job}",
                            "use `rescale-ssh add JOB --from-log` with the job's SSH line")
    workdir = line.workdir if line is not None and line.user == user else None
    port = head.get("sshPort")
    if port is None and line is not None:
        port = line.port
    workers, skipped = routes(instances, head)
    target = Target.checked(job=job, user=user, host=public_address(head), port=port,
                            workdir=workdir, source=source, workers=workers)
    return Resolution(target, skipped)


def public_address(instance: dict[str, Any]) -> object:
    return instance.get("publicIp") or instance.get("publicHostname")


def offers_ssh(instance: dict[str, Any]) -> bool:
    """``supportedServices`` lists ``ssh`` (or is not given: read what is there)."""
    services = instance.get("supportedServices")
    if not isinstance(services, list):
        return True
    return any(isinstance(name, str) and name.strip().lower() == "ssh" for name in services)


def candidates(instances: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The nodes that could be the head: a public address, and ssh offered."""
    return [i for i in instances if isinstance(i, dict) and public_address(i) and offers_ssh(i)]


def head_node(instances: list[dict[str, Any]],
              lines: list[loglines.SSHLine] | None = None) -> dict[str, Any] | None:
    """The head node, by the rule in the module docstring."""
    reachable = candidates(instances)
    for instance in reachable:
        if _norm(instance.get("role")) in HEAD_ROLES:
            return instance
    for line in lines or []:
        named = [i for i in reachable if _names(i, line)]
        if named:
            return named[0]
    if len(reachable) == 1:
        return reachable[0]
    if not reachable:
        return None
    heads = [i for i in reachable if _norm(i.get("role")) not in WORKER_ROLES] or reachable
    order = {id(instance): index for index, instance in enumerate(heads)}
    return min(heads, key=lambda i: (_started(i), order[id(i)]))


def node_at(instances: list[dict[str, Any]], host: str, port: int) -> dict[str, Any] | None:
    """The node that could be the head and is reached at ``host`` port ``port`` (a head
    found before: ``jobs``/``sync`` then need no logs to tell it)."""
    for instance in candidates(instances):
        if str(public_address(instance)).lower() == host.lower() and \
                str(instance.get("sshPort") or 22) == str(port):
            return instance
    return None


def needs_logs(instances: list[dict[str, Any]]) -> bool:
    """The roles do not say which node is the head and there is more than one candidate: only
    the job's ready line can tell (``jobs``/``sync`` then ask for the logs too)."""
    reachable = candidates(instances)
    return len(reachable) > 1 and not any(_norm(i.get("role")) in HEAD_ROLES for i in reachable)


def lines_of(client: Client, job: str) -> list[loglines.SSHLine]:
    """The job's ready lines a head can be told by; none when the logs cannot be had."""
    return usable(lambda: _ssh_lines(client, job))


def usable(logs: Callable[[], list[loglines.SSHLine]]) -> list[loglines.SSHLine]:
    """The ready lines ``logs()`` gives that a head can be told by; none when the logs cannot
    be had."""
    try:
        return [line for line in logs() if line.unexpected is None]
    except (PlatformError, NotFoundError):
        return []


def line_of(head: dict[str, Any], lines: list[loglines.SSHLine]) -> loglines.SSHLine | None:
    """The ready line that names the head (over the newest line: several nodes may log one);
    when none names it, the only line there is (a renamed host, say)."""
    for line in lines:
        if _names(head, line):
            return line
    return lines[0] if len(lines) == 1 else None


def _names(instance: dict[str, Any], line: loglines.SSHLine) -> bool:
    """The line's destination is this node: its public address (either spelling), and its
    port when the line gives one."""
    addresses = {str(instance.get(k)).lower() for k in ("publicIp", "publicHostname")
                 if instance.get(k)}
    if line.host.lower() not in addresses:
        return False
    if line.port is None:
        return True
    return str(line.port) == str(instance.get("sshPort") or 22)


def _started(instance: dict[str, Any]) -> tuple[int, str]:
    value = instance.get("dateStarted")
    return (0, value) if isinstance(value, str) and value else (1, "")


PRIVATE_ADDRESS_KEYS = ("privateIp", "privateIpAddress", "private_ip", "privateHostname")


def routes(instances: list[dict[str, Any]], head: dict[str, Any]
           ) -> tuple[tuple[tuple[object, object, bool], ...], list[str]]:
    """How each node but the head is reached, in the platform's order, and the nodes that get
    no block, each with why (module docstring). Each route is validated here, so one node's
    bad value costs that node its block, not the job all of its blocks."""
    workers: list[tuple[object, object, bool]] = []
    skipped: list[str] = []
    head_end = _public_end(head)
    for instance in instances:
        if instance is head or not isinstance(instance, dict):
            continue
        name = validate.shown(str(instance.get("id") or instance.get("instanceGroup") or
                                  instance.get("privateHostname") or "(no id)"), 40)
        if not offers_ssh(instance):
            skipped.append(f"node {name} offers no ssh (supportedServices: "
                           f"{validate.shown(str(instance.get('supportedServices')), 60)})")
            continue
        route = _route(instance, head_end)
        if route is None:
            skipped.append(f"node {name} has no address of its own")
            continue
        try:
            workers.append((validate.host(route[0], source="the platform"),
                            validate.port(22 if route[1] is None else route[1],
                                          source="the platform"),
                            route[2]))
        except InvalidValueError as exc:
            skipped.append(f"node {name}: {exc.message}")
    return tuple(workers), skipped


def _public_end(instance: dict[str, Any]) -> tuple[str, str] | None:
    """The (address, port) a node is reached at from outside, when it has its own."""
    public = public_address(instance)
    if not public:
        return None
    port = instance.get("sshPort")
    if port is None and instance.get("isBehindNat") is True:
        return None  # one public address for the whole cluster, no port forwarded to it
    return str(public).lower(), str(22 if port is None else port)


def _route(instance: dict[str, Any], head_end: tuple[str, str] | None
           ) -> tuple[object, object, bool] | None:
    end = _public_end(instance)
    if end is not None and end != head_end:
        return public_address(instance), instance.get("sshPort"), False
    private = next((instance[k] for k in PRIVATE_ADDRESS_KEYS if instance.get(k)), None)
    if private is None:
        return None
    # Behind NAT, sshPort is the public port forwarded to the node: inside, sshd is on 22.
    # Without NAT it is sshd's own port.
    natted = instance.get("isBehindNat") is True
    return private, 22 if natted else instance.get("sshPort"), True


def worker_hosts(instances: list[dict[str, Any]], head: dict[str, Any]
                 ) -> tuple[tuple[object, object, bool], ...]:
    return routes(instances, head)[0]


def statuses(client: Client, job: str) -> Status:
    try:
        return Status(
            job=_newest(client, f"/api/v2/jobs/{job}/statuses/", f"the statuses of job {job}"),
            cluster=_newest(
                client, f"/api/v2/jobs/{job}/cluster_statuses/", f"the cluster of job {job}",
                optional=True,
            ),
        )
    except NotFoundError as error:
        error.job = error.job or job
        raise


def log_texts(entries: Iterable[Any]) -> Iterator[str]:
    for entry in entries:
        if isinstance(entry, str):
            yield entry
        elif isinstance(entry, dict):
            for key in LOG_TEXT_KEYS:
                if isinstance(entry.get(key), str):
                    yield entry[key]
                    break


def from_log(job: str, text: str, *, source: str = "the log text", force: bool = False
             ) -> Target:
    """A target from the job's SSH line, found anywhere in ``text`` (no platform needed).

    A line whose user or working folder names another job (``uprod_<OTHER>``) is refused
    unless ``force``: it was copied from that job's logs, and would send this alias there."""
    job = validate.job_id(job, source="the command line")
    line = loglines.find(text)
    if line is None:
        error = InvalidValueError("log text", text.strip()[:60], "no 'Instance ready for ssh "
                                  "access. Command: ssh ...' line in it", source=source)
        error.hint = "copy the line from the job's Status → Job Logs in the Rescale web UI"
        raise error
    target = target_from_line(job, line, source=source)
    named = loglines.job_named(target.user, target.workdir)
    if named is not None and named[0] != job and not force:
        other, what = named
        refused = InvalidValueError("log line", what, "another job's", source=source)
        refused.message = f"the line from {source} is job {other}'s ({what}), not job {job}'s"
        refused.hint = (f"paste job {job}'s own line, or `rescale-ssh add {other} --from-log "
                        "...` for that job; --force writes it for this job anyway")
        raise refused
    return target


def target_from_line(job: str, line: loglines.SSHLine, *, source: str) -> Target:
    if line.unexpected is not None:
        raise InvalidValueError("ssh command", line.unexpected,
                                "only -i KEY, -p PORT, -l USER and -o Port=N besides user@host",
                                source=source)
    return Target.checked(job=job, user=line.user, host=line.host, port=line.port,
                          workdir=line.workdir, source=source)


def _ssh_lines(client: Client, job: str) -> list[loglines.SSHLine]:
    """Every "ready for ssh access" line of the job's logs, oldest first (one entry is one
    line; one page in the common case)."""
    entries = client.paged(f"/api/v3/jobs/{job}/logs/", what=f"the logs of job {job}",
                           params={"limit": 10000, "page_size": 1000})
    return [line for line in (loglines.parse(text) for text in log_texts(entries))
            if line is not None]


def _newest(client: Client, path: str, what: str, *, optional: bool = False) -> str | None:
    try:
        entries = lifecycle.newest_first(client.paged(path, what=what))
    except RescaleSSHError:
        if not optional:
            raise
        return None
    # Shown in messages: no escape sequence or line break of the platform's reaches the
    # terminal.
    return validate.shown(entries[0]["status"], 80) if entries else None


def _job_detail(client: Client, job: str) -> None:
    client.get(f"/api/v2/jobs/{job}/", what=f"job {job}")  # raises NotFoundError


def _norm(value: object) -> str:
    return value.strip().lower().replace("_", " ") if isinstance(value, str) else ""
