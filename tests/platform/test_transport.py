"""The two transports of the platform client (transport.py) give the same results: every fault
of the fake platform, through requests (the commands) and through the standard library (the
hook's cold path, issue 16: no requests imported there)."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rescale_ssh import paths
from rescale_ssh.errors import RescaleSSHError
from rescale_ssh.hook import jobcache
from rescale_ssh.platform import preconnect
from rescale_ssh.platform.client import Client
from rescale_ssh.platform.transport import KINDS, REQUESTS, STDLIB
from rescale_ssh.sshconfig import toolfiles
from tests.fakeplatform import FakePlatform, Hang, Huge, Malformed, Reset, Status, Truncated
from tests.helpers import Cli
from tests.test_import_graph import hook_path
from tests.tls import make_tls, serve_tls

ME = "/api/v2/users/me/"
JOB = "Trns1"
NETWORK_VARIABLES = (*preconnect.PROXY_VARIABLES, "NO_PROXY", "no_proxy", "REQUESTS_CA_BUNDLE",
                     "CURL_CA_BUNDLE")
FORBIDDEN_ON_COLD_PATH = ("requests", "urllib3", "certifi", "charset_normalizer", "idna",
                          "typer", "click", "rich", "cryptography", "filelock", "pydantic")


@pytest.fixture(autouse=True)
def no_network_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in NETWORK_VARIABLES:
        monkeypatch.delenv(variable, raising=False)


@dataclass
class Outcome:
    """What a call gave, comparable across transports (the seconds waited left out)."""

    value: Any
    error: str | None
    message: str
    hint: str | None
    code: int | None
    requests: int


def outcome(call: Callable[[Client], Any], url: str, key: str, count: Callable[[], int],
            kind: str, **options: Any) -> Outcome:
    settings: dict[str, Any] = {"connect_timeout": 1.0, "read_timeout": 0.5, "retries": 2,
                                "deadline": 3.0, "backoff": 0.01, "max_body": 1024 * 1024,
                                **options}
    before = count()
    with Client(url, key, transport=kind, **settings) as client:
        try:
            value = call(client)
        except RescaleSSHError as error:
            message = re.sub(r"\d+ s\b", "N s", error.message)
            message = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", message)
            return Outcome(None, type(error).__name__, message, error.hint,
                           int(error.exit_code), count() - before)
    return Outcome(value, None, "", None, None, count() - before)


def me(client: Client) -> Any:
    return client.get(ME, what="the user")


def jobs(client: Client) -> Any:
    return sorted(item["id"] for item in client.paged("/api/v2/jobs/", what="your jobs"))


FAULTS: dict[str, Callable[[FakePlatform], None]] = {
    "ok": lambda p: None,
    "401": lambda p: p.inject(ME, Status(401, {"detail": "Invalid token."})),
    "403": lambda p: p.inject(ME, Status(403, {"detail": "You do not have permission."})),
    "404": lambda p: p.inject(ME, Status(404, {"detail": "Not found."})),
    "429 with Retry-After": lambda p: p.inject(ME, Status(429, headers={"Retry-After": "1"})),
    "429 for good": lambda p: p.inject(ME, *[Status(429, headers={"Retry-After": "1"})] * 5),
    "500": lambda p: p.inject(ME, Status(500, {"detail": "Server Error"})),
    "503 for good": lambda p: p.inject(ME, *[Status(503)] * 5),
    "malformed JSON": lambda p: p.inject(ME, Malformed()),
    "hostile JSON": lambda p: p.inject(ME, Status(200, b"[" * 100_000)),
    "a hang": lambda p: p.inject(ME, Hang(10)),
    "a hang for good": lambda p: p.inject(ME, *[Hang(10)] * 10),
    "a huge body": lambda p: p.inject(ME, Huge(4 * 1024 * 1024)),
    "a reset": lambda p: p.inject(ME, Reset()),
    "resets for good": lambda p: p.inject(ME, *[Reset()] * 5),
    "a truncated body": lambda p: p.inject(ME, Truncated()),
    "truncated for good": lambda p: p.inject(ME, *[Truncated()] * 5),
}


def run_fault(fault: str, kind: str) -> Outcome:
    with FakePlatform() as platform:
        FAULTS[fault](platform)
        return outcome(me, platform.base_url, platform.api_key, platform.count, kind)


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_every_fault_gives_the_same_result_through_both_transports(fault: str) -> None:
    found = {kind: run_fault(fault, kind) for kind in KINDS}
    assert found[STDLIB] == found[REQUESTS], found
    if fault == "ok":
        assert found[STDLIB].value["username"] == "me"
    else:
        assert found[STDLIB].error is not None or found[STDLIB].requests > 1, found


@pytest.mark.parametrize("kind", KINDS)
def test_a_429_waits_as_long_as_retry_after_says(kind: str) -> None:
    with FakePlatform() as platform:
        platform.inject(ME, Status(429, headers={"Retry-After": "1"}))
        started = time.monotonic()
        found = outcome(me, platform.base_url, platform.api_key, platform.count, kind)
        assert 0.9 <= time.monotonic() - started < 3
    assert found.value["username"] == "me" and found.requests == 2


@pytest.mark.parametrize("kind", KINDS)
def test_a_platform_that_never_answers_ends_within_the_deadline(kind: str) -> None:
    with FakePlatform() as platform:
        platform.inject(ME, *[Hang(10)] * 50)
        started = time.monotonic()
        found = outcome(me, platform.base_url, platform.api_key, platform.count, kind,
                        retries=50, deadline=1.5, read_timeout=0.3)
        assert time.monotonic() - started < 1.5 + 0.8
    assert "timed out" in found.message


def test_paging_is_the_same_through_both_transports() -> None:
    found = {}
    for kind in KINDS:
        with FakePlatform() as platform:
            platform.max_page_size = 2
            for job in ("Aaa", "Bbb", "Ccc", "Ddd", "Eee"):
                platform.add_job(job)
            found[kind] = outcome(jobs, platform.base_url, platform.api_key, platform.count,
                                  kind)
            assert [r.query.get("page") for r in platform.requests] == [None, "2", "3"]
            assert {r.query.get("page_size") for r in platform.requests} == {"100"}
    assert found[STDLIB] == found[REQUESTS]
    assert found[STDLIB].value == ["Aaa", "Bbb", "Ccc", "Ddd", "Eee"]


def test_connection_refused_is_the_same_through_both_transports() -> None:
    with FakePlatform() as platform:
        url = platform.base_url
    found = {kind: outcome(me, url, "some-key-123", lambda: 0, kind) for kind in KINDS}
    assert found[STDLIB] == found[REQUESTS]
    assert "connection refused" in found[STDLIB].message


# -- HTTPS ---------------------------------------------------------------------------------------


@pytest.fixture
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def https_platform(tls_files: tuple[Path, Path, Path]) -> Iterator[tuple[FakePlatform, str]]:
    _, cert, key = tls_files
    with FakePlatform() as platform:
        serve_tls(platform, cert, key)
        yield platform, platform.base_url.replace("http://", "https://")


@pytest.mark.parametrize("how", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "a folder", "none"])
def test_https_is_verified_alike_through_both_transports(
    https_platform: tuple[FakePlatform, str], tls_files: tuple[Path, Path, Path],
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, how: str
) -> None:
    platform, url = https_platform
    ca = tls_files[0]
    if how == "a folder":  # OpenSSL's hashed folder, as c_rehash makes it
        folder = tmp_path / "certs"
        folder.mkdir()
        shutil.copy(ca, folder / "ca.pem")
        digest = subprocess.run(["openssl", "x509", "-hash", "-noout", "-in", str(ca)],
                                capture_output=True, text=True, check=True).stdout.strip()
        (folder / f"{digest}.0").symlink_to(folder / "ca.pem")
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(folder))
    elif how != "none":
        monkeypatch.setenv(how, str(ca))
    found = {kind: outcome(me, url, platform.api_key, platform.count, kind, retries=0)
             for kind in KINDS}
    assert found[STDLIB] == found[REQUESTS], found
    if how == "none":  # not trusted by certifi's bundle, nor the system's
        assert "TLS error" in found[STDLIB].message
    else:
        assert found[STDLIB].value["username"] == "me"


def test_faults_over_https_are_the_same_through_both_transports(
    https_platform: tuple[FakePlatform, str], tls_files: tuple[Path, Path, Path],
    monkeypatch: pytest.MonkeyPatch
) -> None:
    platform, url = https_platform
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_files[0]))
    for fault in ("401", "a hang", "a huge body", "a truncated body", "malformed JSON"):
        found = {}
        for kind in KINDS:
            FAULTS[fault](platform)
            found[kind] = outcome(me, url, platform.api_key, platform.count, kind)
            platform._faults.clear()
        assert found[STDLIB] == found[REQUESTS], (fault, found)


# -- the standard library's own: kept-alive connections, the ones opened ahead --------------------


def test_one_connection_per_thread_is_kept_alive(platform: FakePlatform) -> None:
    platform.add_job(JOB)
    with Client(platform.base_url, platform.api_key, transport=STDLIB) as client:
        for _ in range(3):
            client.get(f"/api/v2/jobs/{JOB}/", what=f"job {JOB}")
        platform.inject(ME, Status(500))  # an error answer keeps the connection too
        with pytest.raises(RescaleSSHError):
            client.get(ME, what="the user")
        client.get(ME, what="the user")
    assert len({r.peer for r in platform.requests}) == 1, platform.requests


def test_a_connection_the_platform_closed_is_not_reused(platform: FakePlatform) -> None:
    """A Huge answer closes the connection after its body: the next request opens another
    rather than failing on the dead one (no retry needed)."""
    platform.inject(ME, Huge(1000))
    with Client(platform.base_url, platform.api_key, transport=STDLIB, retries=0) as client:
        client.get(ME, what="the user")
        time.sleep(0.1)
        assert client.get(ME, what="the user")["username"] == "me"
    assert len({r.peer for r in platform.requests}) == 2


def test_the_stdlib_transport_takes_the_connections_opened_ahead(platform: FakePlatform) -> None:
    from rescale_ssh.platform.background import Background

    platform.add_job(JOB)
    spare = preconnect.start(platform.base_url, count=2, timeout=5)
    assert spare is not None
    ahead = [spare.take(spare.host, spare.port) for _ in range(2)]
    ends = {sock.getsockname()[:2] for sock in ahead if sock is not None}
    assert len(ends) == 2
    spare._ready = [sock for sock in ahead if sock is not None]  # handed back, as if unused
    with Client(platform.base_url, platform.api_key, spare=spare, transport=STDLIB) as client, \
            Background(lambda: client.get(f"/api/v2/jobs/{JOB}/", what="job")):
        client.get(f"/api/v2/jobs/{JOB}/", what="job")
    assert {r.peer for r in platform.requests} == ends


@pytest.mark.parametrize("trusted", [True, False])
def test_the_tls_handshakes_are_done_ahead_too(tls_files: tuple[Path, Path, Path],
                                               monkeypatch: pytest.MonkeyPatch,
                                               trusted: bool) -> None:
    """The hook arms its spare connections with the TLS handshake (another round trip hidden
    behind its imports): the requests then go out on those very connections, and no other
    is opened. A handshake that fails ahead (a certificate not trusted) drops that socket:
    the request opens its own and reports the failure as it would have."""
    import ssl

    from rescale_ssh.platform import transport_stdlib
    from rescale_ssh.platform.background import Background

    _, cert, key = tls_files
    if trusted:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_files[0]))
    with FakePlatform() as platform:
        accepted = serve_tls(platform, cert, key)
        url = platform.base_url.replace("http://", "https://")
        platform.add_job(JOB)
        tls = transport_stdlib.TLS().ahead()
        spare = preconnect.start(url, count=2, timeout=5)
        assert spare is not None
        host = spare.host
        spare.arm(lambda sock: tls.context().wrap_socket(sock, server_hostname=host))
        channel = transport_stdlib.StdlibTransport(spare, tls)
        if not trusted:
            with Client(url, platform.api_key, transport=channel, retries=0) as client, \
                    pytest.raises(RescaleSSHError, match="TLS"):
                client.get(f"/api/v2/jobs/{JOB}/", what="job")
            return
        ahead = [spare.take(host, spare.port) for _ in range(2)]
        assert all(isinstance(sock, ssl.SSLSocket) for sock in ahead)
        ends = {sock.getsockname()[:2] for sock in ahead if sock is not None}
        spare._ready = [sock for sock in ahead if sock is not None]  # handed back, unused
        with Client(url, platform.api_key, transport=channel) as client, \
                Background(lambda: client.get(f"/api/v2/jobs/{JOB}/", what="job")):
            client.get(f"/api/v2/jobs/{JOB}/", what="job")
        assert {r.peer for r in platform.requests} == ends
        assert accepted.value == 2


def test_the_api_key_goes_nowhere_else_on_a_redirect(platform: FakePlatform) -> None:
    with FakePlatform() as other:
        platform.inject(ME, Status(302, b"", headers={"Location": f"{other.base_url}{ME}"}))
        with Client(platform.base_url, platform.api_key, transport=STDLIB,
                    retries=0) as client, pytest.raises(RescaleSSHError):
            client.get(ME, what="the user")
        assert other.count() == 0
    platform.inject(ME, Status(301, b"", headers={"Location": "/api/v2/users/me/?again=1"}))
    with Client(platform.base_url, platform.api_key, transport=STDLIB) as client:
        assert client.get(ME, what="the user")["username"] == "me"
    assert [r.query for r in platform.requests[-2:]] == [{}, {"again": "1"}]


# -- the hook's cold path ------------------------------------------------------------------------


def cold_hook(state: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """The hook as ssh runs it (python -I -S launcher), its record removed: the cold path."""
    shutil.rmtree(state / "jobs", ignore_errors=True)
    python, launcher = toolfiles.program()
    command = [python, "-I", "-S", "-X", "importtime", launcher, "hook", "--state", str(state),
               f"rescale-{JOB}"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:")}
    return proc, imported


def test_the_hooks_cold_path_imports_no_requests(cli: Cli, platform: FakePlatform,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    platform.add_job(JOB, host="203.0.113.7", port=2222)
    cli("install", "--yes")
    state = paths.state_dir()
    proc, imported = cold_hook(state)
    assert proc.returncode == 0, proc.stderr
    entry = jobcache.load(str(state), JOB)
    assert entry is not None and entry.state == jobcache.OK, proc.stderr
    assert entry.target is not None and entry.target.host == "203.0.113.7"
    assert "rescale_ssh.platform.transport_stdlib" in imported
    assert "rescale_ssh.platform.client" in imported
    heavy = sorted(m for m in imported if m.split(".")[0] in FORBIDDEN_ON_COLD_PATH)
    assert heavy == []
    # Ours: only what the import graph puts on the hook path (tests/test_import_graph.py).
    assert sorted(m for m in imported if m.split(".")[0] == "rescale_ssh"
                  and m not in hook_path()) == []
    assert len({r.peer for r in platform.requests}) == 2  # instances and logs at once

    # With a proxy variable set, requests (the only one that follows it) resolves the job.
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # for https: this one is http
    proc, imported = cold_hook(state)
    assert proc.returncode == 0, proc.stderr
    entry = jobcache.load(str(state), JOB)
    assert entry is not None and entry.state == jobcache.OK, proc.stderr
    assert "requests" in imported and "rescale_ssh.platform.transport_stdlib" in imported


def test_the_hooks_cold_path_over_https(cli: Cli, https_platform: tuple[FakePlatform, str],
                                        tls_files: tuple[Path, Path, Path],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    platform, url = https_platform
    platform.add_job(JOB, host="203.0.113.7", port=2222)
    monkeypatch.setenv("RESCALE_API_URL", url)
    monkeypatch.setenv("RESCALE_API_KEY", platform.api_key)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_files[0]))
    cli("install", "--yes")
    state = paths.state_dir()
    proc, imported = cold_hook(state)
    assert proc.returncode == 0, proc.stderr
    entry = jobcache.load(str(state), JOB)
    assert entry is not None and entry.state == jobcache.OK, (entry, proc.stderr)
    assert not {m for m in imported if m.split(".")[0] in FORBIDDEN_ON_COLD_PATH}
    # Without the CA bundle, the platform's certificate is not trusted: a failure, remembered.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    proc, _ = cold_hook(state)
    entry = jobcache.load(str(state), JOB)
    assert entry is not None and entry.state == jobcache.FAILED, proc.stderr
    assert "TLS error" in entry.reason
