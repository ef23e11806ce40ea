"""A platform that misbehaves without end, and what we take from the environment (issue 14,
items 3, 4 and 6).

3. One deadline for a whole call, every page, retry and back-off included, and for the hook a
   deadline for the whole resolution: a list that never ends, bytes that trickle in (body or
   headers), 50 MB in one answer or spread over pages all end within it, with one line.
4. Hostile JSON (nesting, numbers out of range, duplicate keys, wrong types anywhere) is a
   clean error for that job: remembered by the hook like any failure, and `sync`/`jobs` go on
   with the other jobs.
6. Our credentials only: ``~/.netrc`` never replaces our Authorization header; the proxy and
   CA-bundle variables corporate users need still work (through a real proxy on loopback); core
   dumps are off once a process holds the key.

Bounds: a deadline of 3 s, and 6 s allowed (Python's start, two cores shared with the rest of
the suite).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import ipaddress
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from rescale_ssh import paths
from rescale_ssh.errors import AuthError, ExitCode, PlatformError, RescaleSSHError
from rescale_ssh.hook import jobcache
from rescale_ssh.platform import joblist, resolver
from rescale_ssh.platform.client import Client
from tests.fakeplatform import VERBATIM_INSTANCE, Drip, FakePlatform, Fault, Huge, Pages, Status
from tests.helpers import Cli, Result

pytestmark = pytest.mark.timeout(60)

DEADLINE = 3.0
BOUND = 6.0
ME = "/api/v2/users/me/"
JOB = "Trst1"
INSTANCES = f"/api/v2/jobs/{JOB}/instances/"
MB = 1024 * 1024


def make(platform: FakePlatform, **options: Any) -> Client:
    settings: dict[str, Any] = {"connect_timeout": 1.0, "read_timeout": 1.0, "retries": 2,
                                "deadline": DEADLINE, "backoff": 0.01, **options}
    return Client(platform.base_url, platform.api_key, **settings)


def one_line(result: Result, starts: str) -> None:
    """One error line starting so, then one hint, and no traceback."""
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr, str(result)
    assert len(lines) == 2 and lines[1].startswith("hint: "), str(result)
    assert lines[0].startswith(f"rescale-ssh: error: {starts}"), str(result)


# -- 3. one deadline ----------------------------------------------------------------------------

ENDLESS: dict[str, list[Fault]] = {
    # The case, faster: a page every 0.2 s, a `next` link on each (before: a deadline
    # for each page, 1,000 pages followed).
    "endless pages": [Pages(delay=0.2)] * 2000,
    "slow drip of the body": [Drip(size=200_000, interval=0.01)] * 10,
    "slow drip of the headers": [Drip(size=200_000, interval=0.01, headers=True)] * 10,
    "50 MB in one answer": [Huge(50 * MB)] * 10,
    "50 MB over pages of 1 MB": [Pages(pad=MB)] * 2000,
}


@pytest.mark.parametrize("case", sorted(ENDLESS))
def test_a_listing_ends_within_the_deadline_whatever_the_platform_does(
    platform: FakePlatform, case: str
) -> None:
    platform.inject(INSTANCES, *ENDLESS[case])
    started = time.monotonic()
    with make(platform, max_body=8 * MB) as client, pytest.raises(PlatformError) as caught:
        list(client.paged(INSTANCES, what=f"job {JOB}"))
    elapsed = time.monotonic() - started
    assert elapsed < BOUND, f"{case}: {elapsed:.1f} s"
    assert "\n" not in caught.value.message and caught.value.hint
    if "MB" in case:
        assert "larger than 8 MiB" in caught.value.message
        assert platform.count(INSTANCES) <= 10  # the bytes of the whole listing are capped
    else:
        assert "timed out" in caught.value.message, caught.value.message


def test_a_tls_handshake_that_trickles_ends_within_the_deadline() -> None:
    """A server that starts a TLS record and sends its bytes one by one: the handshake itself
    must not outlive the deadline (the socket is not yet the connection's while it runs)."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)  # the ClientHello
                conn.sendall(b"\x16\x03\x03\x40\x00")  # a 16 KiB handshake record...
                while not stop.wait(0.05):
                    conn.sendall(b"\x00")  # ...that trickles in

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    url = f"https://127.0.0.1:{listener.getsockname()[1]}"
    started = time.monotonic()
    try:
        with Client(url, "some-key-123", connect_timeout=1, read_timeout=1, retries=0,
                    deadline=DEADLINE) as client, pytest.raises(PlatformError) as caught:
            client.get(ME, what="the user")
    finally:
        stop.set()
        listener.close()
    assert time.monotonic() - started < BOUND
    assert "timed out" in caught.value.message, caught.value.message


def test_a_client_wide_deadline_bounds_every_call_together(platform: FakePlatform) -> None:
    """The hook's: each call could end in time on its own, all of them together must too."""
    platform.latency = 0.4
    started = time.monotonic()
    with make(platform, deadline=10, total=1.5) as client, pytest.raises(PlatformError):
        for _ in range(10):
            client.get(ME, what="the user")
    assert time.monotonic() - started < 1.5 + 1.0
    assert platform.count(ME) <= 4


def test_the_page_cap(platform: FakePlatform) -> None:
    platform.inject(INSTANCES, *[Pages()] * 50)
    with make(platform, max_pages=20) as client, pytest.raises(PlatformError) as caught:
        list(client.paged(INSTANCES, what=f"job {JOB}"))
    assert caught.value.message.startswith(f"the platform's list of job {JOB} does not end")
    assert platform.count(INSTANCES) == 20


def install(cli: Cli, timeout: float = DEADLINE) -> Path:
    cli("install", "--yes", "--timeout", f"{timeout:g}")
    return paths.state_dir()


def hook(state: Path, job: str = JOB, timeout: float = 30) -> Result:
    command = [sys.executable, "-m", "rescale_ssh", "hook", "--state", str(state),
               f"rescale-{job}"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    return Result(["rescale-ssh", "hook", f"rescale-{job}"], proc.returncode, proc.stdout,
                  proc.stderr)


@pytest.mark.parametrize("case", sorted(ENDLESS))
def test_the_hooks_deadline_bounds_ssh_whatever_the_platform_does(
    cli: Cli, platform: FakePlatform, case: str
) -> None:
    platform.add_job(JOB, host="127.0.0.1")
    state = install(cli)
    platform.inject(INSTANCES, *ENDLESS[case])
    started = time.monotonic()
    result = hook(state)
    elapsed = time.monotonic() - started
    assert elapsed < BOUND, f"{case}: {elapsed:.1f} s\n{result}"
    assert result.returncode == 0 and "Traceback" not in result.stderr, str(result)
    entry = jobcache.load(str(state), JOB)
    assert entry is not None and entry.state == jobcache.FAILED, str(result)
    assert entry.code == ExitCode.UNAVAILABLE and "\n" not in entry.reason
    expected = "the platform's answer is larger than 8 MiB" if "MB" in case else "timed out"
    assert expected in entry.reason, entry.reason


def test_a_command_ends_within_its_deadline_on_a_list_that_never_ends(
    cli: Cli, platform: FakePlatform
) -> None:
    platform.add_job(JOB)
    platform.inject(INSTANCES, *ENDLESS["endless pages"])
    started = time.monotonic()
    result = cli("add", JOB, env={"RESCALE_SSH_TIMEOUT": f"{DEADLINE:g}"},
                 expect=ExitCode.UNAVAILABLE)
    assert time.monotonic() - started < BOUND, str(result)
    one_line(result, "the platform")


# -- 4. hostile JSON ----------------------------------------------------------------------------

HOSTILE: dict[str, bytes] = {
    "deep array": b"[" * 200_000,
    "deep object": b'{"a":' * 100_000,
    "deep but parseable": b"[" * 900 + b"]" * 900,
    "huge exponent": b'{"count": 1e999999, "next": null, "results": []}',
    "negative huge exponent": b'{"count": -1e999999, "next": null, "results": []}',
    "NaN": b'{"count": NaN, "next": null, "results": []}',
    "Infinity": b'{"count": Infinity, "next": null, "results": []}',
    "100,000 digits": b'{"count": ' + b"9" * 100_000 + b', "next": null, "results": []}',
    "duplicate keys": b'{"next": null, "results": [], "next": "https://elsewhere/"}',
    "duplicate keys inside": b'{"next": null, "results": [{"sshPort": 22, "sshPort": 2222}]}',
}


def test_a_whole_command_ends_within_five_deadlines(cli: Cli, platform: FakePlatform) -> None:
    """Each call had its deadline, the command none: `sync` of 320 started clusters, 0.5 s a
    request, 8 at a time, took its 40 rounds (20 s) whatever RESCALE_SSH_TIMEOUT said. Now its
    calls together end within five deadlines (here 10 s); the jobs it could not ask about are
    noted, not dropped."""
    for i in range(320):
        platform.add_job(f"Slow{i:03d}", host=f"198.51.{100 + i // 200}.{i % 200 + 1}")

    def slow_once_listed() -> None:  # the list pages come fast; then each cluster is slow
        while not platform.count("/api/v2/jobs/Slow") and time.monotonic() - started < 30:
            time.sleep(0.01)
        platform.latency = 0.5

    started = time.monotonic()
    threading.Thread(target=slow_once_listed, daemon=True).start()
    result = cli("sync", env={"RESCALE_SSH_TIMEOUT": "2"}, expect=None)
    elapsed = time.monotonic() - started
    assert 9.0 < elapsed < 14.0, (elapsed, result)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result
    assert platform.count("/api/v2/jobs/Slow") < 320, "every cluster was asked"


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_json_is_a_clean_platform_error(platform: FakePlatform, case: str) -> None:
    platform.inject(INSTANCES, Status(200, HOSTILE[case]))
    with make(platform) as client, pytest.raises(PlatformError) as caught:
        list(client.paged(INSTANCES, what=f"job {JOB}"))
    assert caught.value.message.startswith(f"the platform sent malformed JSON for job {JOB}")
    assert "\n" not in caught.value.message and caught.value.hint
    assert platform.count() == 1  # not retried: the platform meant it


def test_hostile_json_in_an_error_answer(platform: FakePlatform) -> None:
    platform.inject(ME, Status(403, b"[" * 200_000))
    with make(platform) as client, pytest.raises(AuthError) as caught:
        client.get(ME, what="the user")
    assert caught.value.message == "the platform refused access to the user: permission denied"


def test_duplicate_keys_are_refused_anywhere_valid_json_is_still_read(
    platform: FakePlatform
) -> None:
    """The rule: a key given twice in one object is refused (parsers disagree on which one
    counts); the same key in different objects is fine."""
    body = b'{"next": null, "results": [{"id": "a", "x": {"id": 1}}, {"id": "b"}]}'
    platform.inject(INSTANCES, Status(200, body))
    with make(platform) as client:
        assert [i["id"] for i in client.paged(INSTANCES, what=f"job {JOB}")] == ["a", "b"]


def test_the_cli_says_one_line_for_hostile_json(cli: Cli, platform: FakePlatform) -> None:
    platform.add_job(JOB)
    platform.inject(INSTANCES, Status(200, HOSTILE["deep array"]))
    result = cli("add", JOB, expect=ExitCode.UNAVAILABLE)
    one_line(result, f"the platform sent malformed JSON for job {JOB}")


@pytest.mark.parametrize("command", ["sync", "jobs"])
def test_one_jobs_hostile_json_does_not_take_down_the_others(
    cli: Cli, platform: FakePlatform, command: str, ssh_config: Path
) -> None:
    platform.add_job(JOB)
    platform.add_job("Good1")
    platform.inject(INSTANCES, *[Status(200, HOSTILE["deep array"])] * 5)
    result = cli(command)
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    if command == "sync":
        assert "Added rescale-Good1" in result.stdout, str(result)
        assert f"rescale-{JOB}" not in result.stdout
        assert f"job {JOB} is running but has no usable head node: the platform sent " \
               f"malformed JSON for job {JOB}" in result.stderr, str(result)
        assert "Host rescale-Good1" in ssh_config.read_text()
    else:  # the bad job is listed, not reachable; the good one is
        rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:]}
        assert rows["Good1"][3:5] == ["ready", "rescale-Good1"], str(result)
        assert rows[JOB][3:5] == ["starting", "-"], str(result)


def test_the_hook_remembers_hostile_json_as_a_failure(cli: Cli, platform: FakePlatform) -> None:
    platform.add_job(JOB, host="127.0.0.1")
    state = install(cli)
    platform.inject(INSTANCES, *[Status(200, HOSTILE["deep array"])] * 5)
    first = hook(state)
    assert first.returncode == 0 and first.stderr == "", str(first)
    entry = jobcache.load(str(state), JOB)
    assert entry is not None and entry.state == jobcache.FAILED
    assert entry.reason.startswith(f"the platform sent malformed JSON for job {JOB}")
    asked = platform.count()
    second = hook(state)  # within the failure TTL: the record answers, nothing is asked
    assert second.returncode == 0 and second.stderr == "", str(second)
    assert platform.count() == asked


BAD_VALUES: dict[str, Any] = {
    "dict": {"a": 1}, "list": [1, [2]], "list of dicts": [{"a": 1}], "huge int": 10**4000,
    "float": 1e308, "negative": -1, "true": True, "null": None, "string": "x", "zero": 0,
}

NESTED_VALUES = ("dict", "list", "huge int", "null", "true")  # inside entries: the few that differ


def bodies() -> Iterator[tuple[str, Any]]:
    """Wrong types at every level of a paged answer and of the entries in it."""
    entry = {"status": "Started", "statusDate": "2023-09-04T11:03:46.398510Z", "id": JOB,
             "message": "Cluster started", "dateInserted": "2023-09-04T11:03:46.398510Z"}
    for name, value in BAD_VALUES.items():
        yield f"body={name}", value
        yield f"results={name}", {"count": 1, "next": None, "results": value}
        yield f"next={name}", {"count": 1, "next": value, "results": []}
        yield f"count={name}", {"count": value, "next": None, "results": []}
        yield f"entry={name}", {"count": 1, "next": None, "results": [value]}
        if name not in NESTED_VALUES:
            continue
        for key in (*entry, "jobStatus", "clusterStatusDisplay", "owner", "sharedWith"):
            yield f"entry.{key}={name}", {"next": None, "results": [{**entry, key: value}]}
            yield f"entry.{key}.content={name}", {
                "next": None, "results": [{**entry, key: {"content": value, "email": value}}]}


def test_wrong_types_at_every_level_are_an_error_for_that_job_only(
    platform: FakePlatform
) -> None:
    """Every path a resolution or a listing reads, every wrong type: a RescaleSSHError at
    most, nothing else (RecursionError, TypeError, ValueError, AttributeError)."""
    platform.add_job(JOB, cluster_status="Started")
    platform.add_job("Down1", status="Queued", cluster_status="Not Started")
    calls = {
        "instances": (INSTANCES, lambda c: resolver.plan(c, JOB)),
        "logs": (f"/api/v3/jobs/{JOB}/logs/", lambda c: resolver.plan(c, JOB)),
        "statuses": ("/jobs/Down1/statuses/", lambda c: resolver.plan(c, "Down1")),
        "cluster statuses": ("/jobs/Down1/cluster_statuses/", lambda c: joblist.ask(c, "Down1")),
        "job list": ("/api/v2/jobs/$", lambda c: joblist.list_jobs(c)),
    }
    escaped = []
    runs = 0
    with make(platform, retries=0) as client:
        for label, body in bodies():
            for name, (path, call) in calls.items():
                platform.inject(path, *[Status(200, body)] * 3)
                runs += 1
                try:
                    call(client)
                except RescaleSSHError:
                    pass
                except Exception as exc:
                    escaped.append(f"{name} {label}: {type(exc).__name__}: {exc}"[:200])
                platform._faults.clear()
    assert not escaped, "\n".join(escaped)
    assert runs > 500


def test_instances_with_wrong_types_in_every_field(platform: FakePlatform) -> None:
    base = {**VERBATIM_INSTANCE, "publicIp": "203.0.113.7", "sshPort": 22}
    escaped = []
    for field in [*base, "other"]:
        for name, value in BAD_VALUES.items():
            for role in ("MPI_MASTER", "CUSTOM"):
                head = {**base, "role": role, field: value}
                worker = {**base, "id": "w1", "role": "CUSTOM", "publicIp": "203.0.113.8"}
                platform.add_job(JOB, instances=[head, worker, value])
                row = joblist.JobSummary(id=JOB, name="", owner="", shared=None, submitted="",
                                         status="Executing", cluster="Started",
                                         ssh=joblist.STARTING)
                with make(platform, retries=0) as client:
                    try:
                        resolver.plan(client, JOB)
                    except RescaleSSHError:
                        pass
                    except Exception as exc:
                        escaped.append(f"{field}={name} ({role}): {type(exc).__name__}")
                    probed = joblist._probe(client, row, {JOB: ("203.0.113.7", 22)})
                    assert probed.id == JOB
    assert not escaped, "\n".join(escaped)


# -- 6. our credentials only --------------------------------------------------------------------


def test_netrc_does_not_replace_our_token(platform: FakePlatform, isolated_home: Path) -> None:
    netrc = isolated_home / ".netrc"
    netrc.write_text("machine 127.0.0.1 login someone password netrc-secret-password\n"
                     "default login anyone password default-secret\n")
    netrc.chmod(0o600)
    with make(platform) as client:
        assert client.get(ME, what="the user")["username"] == "me"
    assert [r.authorization for r in platform.requests] == [f"Token {platform.api_key}"]


class ForwardProxy:
    """A plain HTTP forward proxy on loopback (absolute-URI requests, no CONNECT) that records
    what it relays."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []  # (URL, Authorization header)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                proxy.seen.append((self.path, self.headers.get("Authorization")))
                parts = urlsplit(self.path)
                upstream = http.client.HTTPConnection(parts.hostname or "", parts.port,
                                                      timeout=5)
                headers = {k: v for k, v in self.headers.items()
                           if not k.lower().startswith("proxy-") and k.lower() != "connection"}
                target = parts.path + (f"?{parts.query}" if parts.query else "")
                upstream.request("GET", target, headers=headers)
                answer = upstream.getresponse()
                body = answer.read()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("connection", "transfer-encoding", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                upstream.close()

            def do_CONNECT(self) -> None:  # recorded, then refused: no tunnels here
                proxy.seen.append((f"CONNECT {self.path}", self.headers.get("Authorization")))
                self.send_error(403, "no tunnels")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    running = ForwardProxy()
    try:
        yield running
    finally:
        running.close()


PROXY_VARIABLES = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY",
                   "all_proxy", "NO_PROXY", "no_proxy")


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in (*PROXY_VARIABLES, "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(variable, raising=False)


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy"])
def test_the_proxy_variables_are_honoured(
    platform: FakePlatform, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch,
    no_proxy_env: None, variable: str
) -> None:
    monkeypatch.setenv(variable, proxy.url)
    with make(platform) as client:
        assert client.get(ME, what="the user")["username"] == "me"
    assert proxy.seen and proxy.seen[0][0] == f"{platform.base_url}{ME}"
    assert proxy.seen[0][1] == f"Token {platform.api_key}"
    assert platform.requests[0].authorization == f"Token {platform.api_key}"


@pytest.mark.parametrize("variable", ["NO_PROXY", "no_proxy"])
def test_no_proxy_bypasses_the_proxy(
    platform: FakePlatform, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch,
    no_proxy_env: None, variable: str
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv(variable, "localhost,127.0.0.1")
    with make(platform) as client:
        assert client.get(ME, what="the user")["username"] == "me"
    assert proxy.seen == []
    assert platform.count(ME) == 1


def test_a_proxy_for_other_schemes_is_not_used(
    platform: FakePlatform, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch,
    no_proxy_env: None
) -> None:
    """HTTPS_PROXY is for https URLs: a plain-http platform goes direct."""
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    with make(platform) as client:
        assert client.get(ME, what="the user")["username"] == "me"
    assert proxy.seen == []


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "https_proxy"])
def test_an_https_platform_goes_through_the_https_proxy(
    proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch, no_proxy_env: None, variable: str
) -> None:
    monkeypatch.setenv(variable, proxy.url)
    with Client("https://127.0.0.1:9", "some-key-123", connect_timeout=1, read_timeout=1,
                retries=0, deadline=DEADLINE) as client, pytest.raises(PlatformError) as caught:
        client.get(ME, what="the user")
    assert proxy.seen == [("CONNECT 127.0.0.1:9", None)]  # the key never goes to the proxy
    assert "the proxy failed (check HTTPS_PROXY)" in caught.value.message


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "ca.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@contextlib.contextmanager
def tls_platform(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A TLS server on loopback answering users/me, with its own self-signed certificate."""
    cert, key = self_signed(tmp_path)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            body = json.dumps({"username": "tls", "email": "tls@example.com"}).encode()
            drip = self.path.startswith("/drip")  # a body that trickles in, 1 byte at a time
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(100_000 if drip else len(body)))
            self.end_headers()
            if not drip:
                self.wfile.write(body)
                return
            with contextlib.suppress(OSError):
                for _ in range(100_000):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.01)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", cert
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", None])
def test_the_ca_bundle_variables_are_honoured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_proxy_env: None, variable: str | None
) -> None:
    with tls_platform(tmp_path) as (url, cert):
        if variable is not None:
            monkeypatch.setenv(variable, str(cert))
        with Client(url, "some-key-123", connect_timeout=1, read_timeout=1, retries=0,
                    deadline=DEADLINE) as client:
            if variable is None:
                with pytest.raises(PlatformError, match="TLS error"):
                    client.get(ME, what="the user")
            else:
                assert client.get(ME, what="the user")["username"] == "tls"


def test_a_tls_answer_that_trickles_ends_within_the_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_proxy_env: None
) -> None:
    with tls_platform(tmp_path) as (url, cert):
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
        started = time.monotonic()
        with Client(url, "some-key-123", connect_timeout=1, read_timeout=1, retries=0,
                    deadline=DEADLINE) as client, pytest.raises(PlatformError) as caught:
            client.get("/drip/", what="the user")
        assert time.monotonic() - started < BOUND
        assert "timed out" in caught.value.message, caught.value.message


CORE_PROBE = """
import ctypes, resource, sys
from rescale_ssh.platform.client import Client
libc = ctypes.CDLL(None, use_errno=True)
dumpable_before = libc.prctl(3, 0, 0, 0, 0)  # PR_GET_DUMPABLE
Client("http://127.0.0.1:9", "some-key-123").close()
status = open("/proc/self/status").read()  # still readable: non-dumpable changes its owner
print(dumpable_before, resource.getrlimit(resource.RLIMIT_CORE),
      libc.prctl(3, 0, 0, 0, 0), "Name:" in status)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_core_dumps_are_off_once_a_client_holds_the_key() -> None:
    proc = subprocess.run([sys.executable, "-c", CORE_PROBE], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["1", "(0,", "0)", "0", "True"], proc.stdout


@pytest.mark.skipif(not Path("/proc/self/limits").exists(), reason="needs /proc")
def test_a_running_command_cannot_dump_core(cli: Cli, platform: FakePlatform) -> None:
    """The real program: `wait` on a queued job holds the key while it polls."""
    platform.add_job(JOB, status="Queued", cluster_status="Not Started")
    proc = subprocess.Popen([sys.executable, "-m", "rescale_ssh", "wait", JOB, "--timeout", "30"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while platform.count(f"/api/v2/jobs/{JOB}/") == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert platform.count(f"/api/v2/jobs/{JOB}/") > 0
        limits = Path(f"/proc/{proc.pid}/limits").read_text()
        line = next(x for x in limits.splitlines() if x.startswith("Max core file size"))
        assert line.split()[4:6] == ["0", "0"], line
        if os.geteuid() != 0:  # non-dumpable: its /proc entries belong to root
            assert os.stat(f"/proc/{proc.pid}/fd").st_uid == 0
    finally:
        proc.kill()
        proc.wait(timeout=10)
