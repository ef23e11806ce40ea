"""A fake Rescale platform: a real HTTP server on 127.0.0.1 serving the API as rescale-api.md
describes it, every unconfirmed shape in each of its variants, plus injectable faults.

Standard library only. A pytest plugin (registered in conftest.py): the ``platform`` fixture
starts one per test and points RESCALE_API_URL and RESCALE_API_KEY at it.

Variants beyond ``add_job``'s arguments: ``FakePlatform.logs_shape`` ("envelope" or "list"),
``FakePlatform.instances_endpoint = False`` (an older platform: /instances/ answers 404),
``FakePlatform.statuses_order`` ("newest" first, as the platform lists them, or "oldest": the
client must sort by date), ``FakePlatform.max_page_size``, ``FakePlatform.latency``; per job
``FakeJob.head_last`` (workers listed before the head node) and ``FakeJob.forbidden`` (403 on
every path of the job) and ``FakeJob.public_key_field = False`` (a job detail without
``publicKey``). Faults (``inject``): a status, a hang, HTML, a truncated or reset
answer, a huge one, a list that never ends (``Pages``), bytes that trickle in (``Drip``).

Instances have the fields of the verbatim entry in rescale-api.md (VERBATIM_INSTANCE) and no
other: ``clusterId``, ``dateStarted``, ``id``, ``instanceGroup``, ``isBehindNat``,
``privateHostname``, ``privateIp``, ``publicHostname``, ``publicIp``, ``role``, ``sshPort``,
``supportedServices``, ``tenancy``, ``username``. Cluster kinds (``add_job(kind=...)``): "mpi"
(``MPI_MASTER`` head with a public address, ``MPI_SLAVE`` workers with private ones only),
"custom" (every role ``CUSTOM``, every node its own public address: the head is told by the
job's ready line) and "nat" (every role ``CUSTOM``, ``isBehindNat``, one public IP for all nodes
and a forwarded port per node: ``nat_ports``). Invented by this fake, marked as such: nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import pytest

from rescale_ssh.platform import lifecycle

DEFAULT_API_KEY = "fake-api-key-0123456789abcdef"
JOB_ORDER = ("Pending", "Waiting for Queue", "Queued", "Started", "Validated", "Executing",
             "Completed")
CLUSTER_ORDER = ("Not Started", "Starting", "Started", "Stopping", "Stopped")
REASONS = {"completed": "Completed successfully", "stopping": "User Terminated"}
NOT_FOUND = {"detail": "Not found."}
# rescale-api.md, verbatim (Rescale staff notebook, Sept 2023, an Azure cluster).
VERBATIM_INSTANCE: dict[str, Any] = {
    "clusterId": "iztfQb", "dateStarted": "2023-09-04T11:03:46.398510Z", "id": "uYzLif",
    "instanceGroup": "compute0", "isBehindNat": True, "privateHostname": "p30564900000000",
    "privateIp": "10.0.0.10", "publicHostname": "rfxgobovqyjpgw.eastus.cloudapp.azure.com",
    "publicIp": "20.242.129.39", "role": "CUSTOM", "sshPort": 32100,
    "supportedServices": ["ssh"], "tenancy": "default", "username": "uprod_jvSjFc",
}
# Every status word rescale-api.md lists, job and cluster, as the platform writes them.
JOB_STATUSES = ("Pending", "Waiting for Queue", "Queued", "Started", "Validated", "Executing",
                "Completed", "Stopping", "Waiting for Cluster", "Force Stop", "Stopped",
                "Force Stopped")
CLUSTER_STATUSES = ("Not Started", "Pending", "Queued", "Starting", "Started",
                    "Stop Requested", "Stopping", "Stopped", "Unknown", "Error")
FORBIDDEN = {"detail": "You do not have permission to access this resource."}
ME_EMAIL = "me@example.com"  # the platform's user (FakePlatform.email, add_job's owner)
COLLEAGUE = "colleague@example.com"
LIST_STATES = ("not_completed", "completed")  # the job list's ?state= filter


# -- faults ------------------------------------------------------------------------------------


@dataclass
class Status:
    """Answer with this status (and body, headers) instead of the normal answer."""

    code: int
    body: bytes | str | dict[str, Any] | list[Any] | None = None
    headers: dict[str, str] | None = None


@dataclass
class Hang:
    """Read the request, send nothing for ``seconds``, then close."""

    seconds: float


@dataclass
class Malformed:
    """200 with an HTML page (a captive portal, a proxy's error page)."""


@dataclass
class Truncated:
    """200 whose Content-Length promises more bytes than are sent before the close."""


@dataclass
class Reset:
    """Close the connection abruptly, without an answer (an RST)."""


@dataclass
class Huge:
    """200 with a JSON-ish body of ``size`` bytes."""

    size: int


@dataclass
class Pages:
    """200 with a page of no results whose ``next`` always links one page further (a list
    that never ends), after ``delay`` seconds, padded with ``pad`` bytes. Inject it as many
    times as pages are to be served."""

    delay: float = 0.0
    pad: int = 0


@dataclass
class Drip:
    """200 whose bytes come one at a time, ``interval`` seconds apart, for ``size`` bytes: the
    body's (a Content-Length of ``size``), or with ``headers`` the headers' themselves (a
    header line that never ends)."""

    size: int = 100_000
    interval: float = 0.05
    headers: bool = False


@dataclass
class Await:
    """Answer as usual, but only once a request whose path matches ``pattern`` has arrived
    (one sent at the same time); hang up when none came within ``seconds``."""

    pattern: str
    seconds: float = 5.0


Fault = Status | Hang | Malformed | Truncated | Reset | Huge | Pages | Drip | Await


# -- state -------------------------------------------------------------------------------------


@dataclass
class Req:
    method: str
    path: str
    query: dict[str, str]
    authorization: str | None
    headers: dict[str, str] = field(default_factory=dict)
    peer: tuple[str, int] | None = None  # the client's address and port: its connection


@dataclass
class Event:
    status: str
    when: dt.datetime
    reason: str | None = None

    def as_json(self, *, zone: bool = True) -> dict[str, Any]:
        date = _iso(self.when) if zone else _iso(self.when)[:-1]
        return {"status": self.status, "statusDate": date, "statusReason": self.reason}


@dataclass
class FakeJob:
    id: str
    user: str
    host: str
    port: int
    workdir: str
    name: str
    owner: str
    shared: bool
    public_key: str | None
    cidr_rule: str | None
    workers: int = 0
    instances: list[dict[str, Any]] | None = None  # explicit list: served as given
    log_lines: list[str] | None = None  # explicit lines: served as given
    timeline: list[tuple[float, str, str]] = field(default_factory=list)
    head_last: bool = False  # workers before the head node in /instances/
    forbidden: bool = False  # 403 on every path of the job
    public_key_field: bool = True  # False: the job detail has no publicKey at all
    kind: str = "mpi"  # "mpi", "custom" or "nat" (module docstring)
    nat_ports: list[int] = field(default_factory=list)  # "nat": a forwarded port per node
    line_style: str = "us"  # "jp": ujpprod_-style line with a period after the directory
    port_option: str = "before"  # where the ready line has -p PORT: "before"/"after" user@host
    line_per_node: bool = False  # one ready line per node, the head's first, a worker's last
    created: dt.datetime = field(default_factory=lambda: _now())
    added: float = field(default_factory=time.monotonic)
    statuses: list[Event] = field(default_factory=list)  # oldest first
    cluster_statuses: list[Event] = field(default_factory=list)
    ever_started: bool = False
    _applied: int = 0

    @property
    def status(self) -> str:
        return self.statuses[-1].status

    @property
    def cluster_status(self) -> str:
        return self.cluster_statuses[-1].status

    def set(self, status: str | None, cluster_status: str | None) -> None:
        if status is not None and (not self.statuses or self.statuses[-1].status != status):
            self.statuses.append(Event(status, _now(), REASONS.get(status.lower())))
        if cluster_status is not None and (
            not self.cluster_statuses or self.cluster_statuses[-1].status != cluster_status
        ):
            self.cluster_statuses.append(Event(cluster_status, _now()))
            if cluster_status.strip().lower() == "started":
                self.ever_started = True

    def advance(self) -> None:
        """Apply the timeline entries whose time has come."""
        elapsed = time.monotonic() - self.added
        while self._applied < len(self.timeline) and self.timeline[self._applied][0] <= elapsed:
            _, status, cluster = self.timeline[self._applied]
            self.set(status, cluster)
            self._applied += 1

    def current_instances(self) -> list[dict[str, Any]]:
        if self.instances is not None:
            return self.instances
        if self.cluster_status.strip().lower() != "started":
            return []
        nodes = [self._node(0)] + [self._node(i) for i in range(1, self.workers + 1)]
        return [*nodes[1:], nodes[0]] if self.head_last else nodes

    def _node(self, index: int) -> dict[str, Any]:
        """Node ``index`` (0: the head) with exactly the verbatim entry's fields."""
        cluster = f"cl{self.id}"
        started = self.created + dt.timedelta(minutes=2, seconds=index)
        node: dict[str, Any] = {
            "clusterId": cluster, "dateStarted": _iso(started), "id": f"n{index}{self.id}",
            "instanceGroup": "compute0", "isBehindNat": False,
            "privateHostname": f"p{index:02d}{self.id.lower()}",
            "privateIp": f"10.0.0.{10 + index}",
            "publicHostname": None, "publicIp": None, "role": "CUSTOM", "sshPort": 22,
            "supportedServices": ["ssh"], "tenancy": "default", "username": self.user,
        }
        if self.kind == "mpi":
            node["role"] = "MPI_MASTER" if index == 0 else "MPI_SLAVE"
            if index == 0:
                node.update(publicIp=self.host, sshPort=self.port,
                            publicHostname=f"node0-{self.id.lower()}.clusters.example.com")
        elif self.kind == "custom":
            node.update(publicIp=self.host if index == 0 else f"203.0.113.{100 + index}",
                        sshPort=self.port if index == 0 else 22,
                        publicHostname=f"node{index}-{self.id.lower()}.cloudapp.example.com")
        else:  # "nat": one public address, a forwarded port per node
            port = self.nat_ports[index] if index < len(self.nat_ports) else 32100 + index
            node.update(publicIp=self.host, sshPort=self.port if index == 0 else port,
                        isBehindNat=True,
                        publicHostname=f"{self.id.lower()}.eastus.cloudapp.example.com")
        return node

    def ready_line(self, node: dict[str, Any] | None = None) -> str:
        """The "Instance ready for ssh access" line as the platform writes it (rescale-api.md:
        the .jp form ends with a period), for the head or for ``node``."""
        host = self.host if node is None else str(node.get("publicIp") or node.get("privateIp"))
        port = self.port if node is None else int(node.get("sshPort") or 22)
        option = f"-p {port}" if port != 22 else ""
        before, after = (f" {option}", "") if self.port_option == "before" else ("", f" {option}")
        if not option:
            before = after = ""
        period = "." if self.line_style == "jp" else ""
        return (
            f"Instance ready for ssh access. Command: ssh -i </path/to/key>{before} "
            f"{self.user}@{host}{after}; working directory: {self.workdir}{period}"
        )

    def logs(self) -> list[dict[str, Any]]:
        if self.log_lines is not None:
            lines = list(self.log_lines)
        else:
            lines = [
                "Job submitted for execution",
                "Waiting for cluster to start",
                "Launching cluster",
            ]
            if self.ever_started:
                lines += ["Cluster started", self.ready_line()]
                if self.line_per_node:
                    lines += [self.ready_line(self._node(i)) for i in range(1, self.workers + 1)
                              if self._node(i).get("publicIp")]
                lines += ["Running command"]
            if self.cluster_statuses and \
                    self.cluster_status.strip().lower() in ("stopping", "stopped"):
                lines += ["Shutting down cluster"]
        start = self.created
        return [
            {"message": text, "dateInserted": _iso(start + dt.timedelta(seconds=i))}
            for i, text in enumerate(lines)
        ]

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "owner": self.owner,
            "dateInserted": _iso(self.created),
            # The owner's email and the emails it shared the job with (Rescale's API docs);
            # no isShared (rescale-api.md). ``shared``: someone is listed, the user when
            # someone else owns the job, a colleague when the user does.
            "sharedWith": [COLLEAGUE if self.owner == ME_EMAIL else ME_EMAIL]
            if self.shared else [],
            "jobStatus": {
                "content": self.status,
                "displayName": self.status,
                "statusDate": _iso(self.statuses[-1].when),
                "statusReason": self.statuses[-1].reason,
            },
            "clusterStatusDisplay": {
                "content": self.cluster_status,
                "displayName": self.cluster_status,
                "statusDate": _iso(self.cluster_statuses[-1].when),
            },
        }


# -- the platform ------------------------------------------------------------------------------


class FakePlatform:
    def __init__(self, api_key: str = DEFAULT_API_KEY, host: str = "127.0.0.1") -> None:
        self.api_key = api_key
        self.max_page_size = 100
        self.latency = 0.0
        self.logs_shape = "envelope"
        self.statuses_order = "newest"  # "oldest": the client must sort by statusDate
        self.instances_endpoint = True  # False: an older platform without /instances/ (404)
        self.username = "me"
        self.email = ME_EMAIL
        # The job list: "honour" ?state=not_completed / completed (completed: a final job
        # status, as lifecycle.py has them), or "ignore" it (every job, whatever was asked);
        # "newest" first by dateInserted (Rescale's documented sample) or "oldest" first.
        self.list_filter = "honour"
        self.list_order = "newest"
        self.requests: list[Req] = []
        self.errors: list[str] = []  # bugs of the fake itself; the fixture fails on any
        self.jobs: dict[str, FakeJob] = {}
        self._faults: list[tuple[re.Pattern[str], deque[Fault]]] = []
        self._lock = threading.RLock()
        self._arrived = threading.Condition(self._lock)  # notified at each request (Await)
        self._closing = threading.Event()
        self._connections: set[socket.socket] = set()
        self._server = _Server((host, 0), _Handler)  # host: the WAN benchmark's namespace
        self._server.platform = self
        self.base_url = f"http://{host}:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()

    # -- test API --

    def count(self, prefix: str = "") -> int:
        with self._lock:
            return sum(1 for r in self.requests if r.path.startswith(prefix))

    def add_job(
        self,
        job_id: str,
        *,
        user: str | None = None,
        host: str = "203.0.113.7",
        port: int = 22,
        workdir: str | None = None,
        status: str = "Executing",
        cluster_status: str = "Started",
        workers: int = 0,
        instances: list[dict[str, Any]] | None = None,
        log_lines: list[str] | None = None,
        name: str | None = None,
        owner: str = "me@example.com",
        shared: bool = False,
        public_key: str | None = None,
        cidr_rule: str | None = "0.0.0.0/0",
        timeline: list[tuple[float, str, str]] | None = None,
        kind: str = "mpi",
        nat_ports: list[int] | None = None,
        line_style: str = "us",
        port_option: str = "before",
        line_per_node: bool = False,
    ) -> FakeJob:
        user = f"uprod_{job_id}" if user is None else user
        job = FakeJob(
            id=job_id,
            user=user,
            host=host,
            port=port,
            workdir=f"/enc/{user}/work" if workdir is None else workdir,
            name=f"Job {job_id}" if name is None else name,
            owner=owner,
            shared=shared,
            public_key=public_key,
            cidr_rule=cidr_rule,
            workers=workers,
            instances=instances,
            log_lines=log_lines,
            timeline=sorted(timeline or [], key=lambda entry: entry[0]),
            kind=kind,
            nat_ports=list(nat_ports or []),
            line_style=line_style,
            port_option=port_option,
            line_per_node=line_per_node,
        )
        # A plausible history leading to the given statuses, oldest first.
        earlier = _now() - dt.timedelta(minutes=10)
        job.created = earlier - dt.timedelta(minutes=1)
        for order, value, target in (
            (JOB_ORDER, status, job.statuses),
            (CLUSTER_ORDER, cluster_status, job.cluster_statuses),
        ):
            names = [v.lower() for v in order]
            history = list(order[: names.index(value.lower())]) if value.lower() in names else []
            for i, previous in enumerate(history):
                target.append(Event(previous, earlier + dt.timedelta(seconds=30 * i),
                                    REASONS.get(previous.lower())))
        job.ever_started = any(e.status.lower() == "started" for e in job.cluster_statuses)
        job.set(status, cluster_status)
        with self._lock:
            self.jobs[job_id] = job
        return job

    def set_status(self, job_id: str, status: str, cluster_status: str | None = None) -> None:
        with self._lock:
            self.jobs[job_id].set(status, cluster_status)

    def remove_job(self, job_id: str) -> None:
        with self._lock:
            del self.jobs[job_id]

    def inject(self, path_regex: str, *faults: Fault) -> None:
        with self._lock:
            self._faults.append((re.compile(path_regex), deque(faults)))

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._server.server_close()
        self._thread.join(timeout=1)

    def __enter__(self) -> FakePlatform:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- used by the handler --

    def _record(self, req: Req) -> Fault | None:
        with self._lock:
            self.requests.append(req)
            self._arrived.notify_all()
            for pattern, faults in self._faults:
                if faults and pattern.search(req.path):
                    return faults.popleft()
        return None

    def _awaited(self, fault: Await) -> bool:
        pattern = re.compile(fault.pattern)
        with self._lock:
            return self._arrived.wait_for(
                lambda: any(pattern.search(r.path) for r in self.requests), fault.seconds)

    def _authorized(self, header: str | None) -> bool:
        parts = self.api_key.split(".")
        scheme = "Bearer" if len(parts) == 3 and parts[0].startswith("ey") else "Token"
        return header == f"{scheme} {self.api_key}"

    def _route(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        if path == "/api/v2/users/me/":
            return 200, {"username": self.username, "email": self.email}
        if path == "/api/v2/jobs/":
            state = query.get("state")
            if self.list_filter == "honour" and state is not None and state not in LIST_STATES:
                return 400, {"state": [f"Select a valid choice. {state} is not one of the "
                                       "available choices."]}
            with self._lock:
                order = {job_id: i for i, job_id in enumerate(self.jobs)}
                jobs = [j for j in self.jobs.values() if not j.forbidden]
                for listed in jobs:
                    listed.advance()
                if self.list_filter == "honour" and state is not None:
                    jobs = [j for j in jobs
                            if lifecycle.is_final(j.status) == (state == "completed")]
                jobs.sort(key=lambda j: (j.created, order[j.id]),
                          reverse=self.list_order == "newest")
                items = [j.summary() for j in jobs]
            return self._page(path, query, items)
        match = re.fullmatch(r"/api/(v2|v3)/jobs/([^/]+)/(?:([a-z_]+)/)?", path)
        if match is None:
            return 404, NOT_FOUND
        version, job_id, sub = match.group(1), unquote(match.group(2)), match.group(3)
        with self._lock:
            job = self.jobs.get(job_id)
            if job is None:
                return 404, NOT_FOUND
            if job.forbidden:
                return 403, FORBIDDEN
            job.advance()
            if sub is None:
                detail = {**job.summary(), "jobanalyses": [], "isLowPriority": False}
                del detail["jobStatus"], detail["clusterStatusDisplay"]
                # v2 too (rescale-api.md: a Rescale Korea API guide shows them there). Under
                # NAT the job's sshPort is 22, its nodes' the forwarded ones.
                detail.update(publicKey=job.public_key, cidrRule=job.cidr_rule,
                              sshPort=22 if job.kind == "nat" else job.port)
                if not job.public_key_field:
                    del detail["publicKey"]
                return 200, detail
            key = (version, sub)
            if key == ("v2", "instances") and self.instances_endpoint:
                return self._page(path, query, job.current_instances())
            if key == ("v3", "logs"):
                entries = job.logs()
                if self.logs_shape == "list":
                    return 200, entries
                return self._page(path, query, entries)
            newest = self.statuses_order == "newest"
            if key == ("v2", "statuses"):
                events = reversed(job.statuses) if newest else iter(job.statuses)
                return self._page(path, query, [e.as_json() for e in events])
            if key == ("v2", "cluster_statuses"):
                # Cluster statuses write their dates without a zone (rescale-api.md).
                events = reversed(job.cluster_statuses) if newest else iter(job.cluster_statuses)
                return self._page(path, query, [e.as_json(zone=False) for e in events])
        return 404, NOT_FOUND

    def _page(self, path: str, query: dict[str, str], items: list[Any]) -> tuple[int, Any]:
        """Django REST framework's PageNumberPagination: absolute next/previous links."""
        try:
            page = int(query.get("page", "1"))
            size = min(max(int(query.get("page_size", "10")), 1), self.max_page_size)
        except ValueError:
            return 404, {"detail": "Invalid page."}
        pages = max(1, -(-len(items) // size))
        if not 1 <= page <= pages:
            return 404, {"detail": "Invalid page."}

        def link(number: int) -> str:
            return f"{self.base_url}{path}?{urlencode({**query, 'page': number})}"

        return 200, {
            "count": len(items),
            "next": link(page + 1) if page < pages else None,
            "previous": link(page - 1) if page > 1 else None,
            "results": items[(page - 1) * size : page * size],
        }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    platform: FakePlatform

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up mid-answer is expected here


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else delayed ACKs cost 40 ms per request
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.platform._lock:
            self.server.platform._connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.platform._lock:
                self.server.platform._connections.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        platform = self.server.platform
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        req = Req(method, parts.path, query, self.headers.get("Authorization"),
                  dict(self.headers.items()), peer=self.client_address[:2])
        fault = platform._record(req)
        if platform.latency and platform._closing.wait(platform.latency):
            return self._abort()
        if isinstance(fault, Await):
            if not platform._awaited(fault):
                return self._abort()
            fault = None
        if fault is not None:
            return self._fault(fault)
        if method != "GET":
            return self._json(405, {"detail": f'Method "{method}" not allowed.'})
        if not platform._authorized(req.authorization):
            return self._json(401, {"detail": "Invalid token."}, {"WWW-Authenticate": "Token"})
        try:
            code, body = platform._route(parts.path, query)
        except Exception as exc:  # a bug in the fake: make it loud, not a dropped connection
            platform.errors.append(f"{method} {self.path}: {exc!r}")
            code, body = 500, {"detail": f"fake platform bug: {exc!r}"}
        self._json(code, body)

    # -- answers --

    def _send(self, code: int, body: bytes, headers: dict[str, str] | None = None,
              content_type: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, code: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self._send(code, json.dumps(body).encode(), headers)

    def _abort(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _fault(self, fault: Fault) -> None:
        if isinstance(fault, Status):
            body = fault.body
            if body is None:
                body = {"detail": _phrase(fault.code)}
            if isinstance(body, (dict, list)):
                body = json.dumps(body)
            if isinstance(body, str):
                body = body.encode()
            self._send(fault.code, body, fault.headers)
        elif isinstance(fault, Hang):
            self.server.platform._closing.wait(fault.seconds)
            self._abort()
        elif isinstance(fault, Malformed):
            page = b"<!DOCTYPE html><html><body><h1>Welcome to Guest Wi-Fi</h1></body></html>\n"
            self._send(200, page, content_type="text/html")
        elif isinstance(fault, Truncated):
            body = json.dumps({"count": 0, "next": None, "results": []}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body) + 1000))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self._abort()
        elif isinstance(fault, Reset):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
        elif isinstance(fault, Huge):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(fault.size))
            self.end_headers()
            self.close_connection = True
            try:
                for chunk in _huge_body(fault.size):
                    self.wfile.write(chunk)
            except OSError:
                pass  # the client stopped reading: what a size cap does
        elif isinstance(fault, Pages):
            self._endless_page(fault)
        elif isinstance(fault, Drip):
            self._drip(fault)

    def _endless_page(self, fault: Pages) -> None:
        platform = self.server.platform
        if fault.delay and platform._closing.wait(fault.delay):
            return self._abort()
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        try:
            page = int(query.get("page", "1"))
        except ValueError:
            page = 1
        following = f"{platform.base_url}{parts.path}?{urlencode({**query, 'page': page + 1})}"
        body = {"count": 10**9, "next": following, "results": [], "pad": "x" * fault.pad}
        self._json(200, body)

    def _drip(self, fault: Drip) -> None:
        """Write one byte at a time straight to the socket (no buffering), until ``size`` bytes
        are out, the client hangs up or the platform closes."""
        closing = self.server.platform._closing
        self.close_connection = True
        if fault.headers:
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            tail = b"X-Drip: " + b"x" * fault.size
        else:
            head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: " + str(fault.size).encode() + b"\r\n\r\n")
            tail = b"".join(_huge_body(fault.size))
        try:
            self.wfile.write(head)
            self.wfile.flush()
            for index in range(len(tail)):
                if closing.wait(fault.interval):
                    break
                self.wfile.write(tail[index : index + 1])
                self.wfile.flush()
        except OSError:
            pass  # the client gave up: what a deadline does
        self._abort()


def _huge_body(size: int) -> Iterator[bytes]:
    head, tail = b'{"count": 0, "next": null, "results": [], "pad": "', b'"}'
    if size < len(head) + len(tail):
        yield b" " * size
        return
    yield head
    filler = size - len(head) - len(tail)
    while filler > 0:
        piece = min(filler, 65536)
        filler -= piece
        yield b"x" * piece
    yield tail


def _phrase(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return f"HTTP {code}"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _iso(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture
def platform(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakePlatform]:
    """A running fake platform; RESCALE_API_URL and RESCALE_API_KEY point at it."""
    fake = FakePlatform()
    monkeypatch.setenv("RESCALE_API_URL", fake.base_url)
    monkeypatch.setenv("RESCALE_API_KEY", fake.api_key)
    try:
        yield fake
    finally:
        fake.close()
    assert not fake.errors, f"the fake platform failed: {fake.errors}"
