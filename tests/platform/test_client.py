"""The HTTP client against the fake platform: auth, paging, retries, timeouts, hostile answers."""

from __future__ import annotations

import email.utils
import logging
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from rescale_ssh.errors import AuthError, ExitCode, NotFoundError, PlatformError, RescaleSSHError
from rescale_ssh.platform.client import Client
from tests.fakeplatform import (
    FakePlatform,
    Fault,
    Hang,
    Huge,
    Malformed,
    Reset,
    Status,
    Truncated,
)

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJtZSJ9.c2lnbmF0dXJl"
ME = "/api/v2/users/me/"


class Sleeps(list[float]):
    """A real sleep that remembers how long it was asked to sleep."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        time.sleep(seconds)


def make(platform: FakePlatform, key: str | None = None, **options: Any) -> Client:
    settings: dict[str, Any] = {
        "connect_timeout": 1.0,
        "read_timeout": 1.0,
        "retries": 3,
        "deadline": 5.0,
        "backoff": 0.01,
        **options,
    }
    return Client(platform.base_url, platform.api_key if key is None else key, **settings)


@pytest.fixture
def client(platform: FakePlatform) -> Iterator[Client]:
    with make(platform) as made:
        yield made


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- auth ------------------------------------------------------------------------------------


def test_a_plain_key_is_sent_as_token(platform: FakePlatform, client: Client) -> None:
    assert client.get(ME, what="the user")["username"] == "me"
    assert platform.requests[-1].authorization == f"Token {platform.api_key}"


def test_a_jwt_is_sent_as_bearer() -> None:
    with FakePlatform(api_key=JWT) as fake, make(fake) as client:
        assert client.get(ME, what="the user")["email"] == "me@example.com"
        assert fake.requests[-1].authorization == f"Bearer {JWT}"


def test_401_is_an_auth_error_with_the_login_hint(platform: FakePlatform) -> None:
    with make(platform, key="wrong-key-0000") as client, pytest.raises(AuthError) as caught:
        client.get(ME, what="the user")
    assert "rejected the API key" in caught.value.message
    assert "rescale-ssh login" in (caught.value.hint or "")
    assert caught.value.exit_code == ExitCode.AUTH
    assert platform.count() == 1, "a rejected key is not retried"


def test_403_is_an_auth_error(platform: FakePlatform, client: Client) -> None:
    platform.add_job("Theirs").forbidden = True
    with pytest.raises(AuthError) as caught:
        client.get("/api/v2/jobs/Theirs/", what="job Theirs")
    assert "job Theirs" in caught.value.message
    assert "permission" in caught.value.message
    assert platform.count() == 1


def test_404_names_the_thing_and_the_platform(platform: FakePlatform, client: Client) -> None:
    with pytest.raises(NotFoundError) as caught:
        client.get("/api/v2/jobs/Nope/", what="job Nope")
    assert caught.value.message == f"job Nope not found on {platform.base_url}"
    assert platform.count() == 1


# -- paging ----------------------------------------------------------------------------------


def test_paging_follows_next_across_pages(platform: FakePlatform, client: Client) -> None:
    platform.max_page_size = 2
    jobs = ["Aaa", "Bbb", "Ccc", "Ddd", "Eee"]
    for job in jobs:
        platform.add_job(job)
    found = [item["id"] for item in client.paged("/api/v2/jobs/", what="your jobs")]
    assert sorted(found) == jobs
    assert len(found) == 5
    assert [r.query.get("page") for r in platform.requests] == [None, "2", "3"]
    assert all(r.authorization == f"Token {platform.api_key}" for r in platform.requests)


def test_a_plain_list_body_is_accepted(platform: FakePlatform, client: Client) -> None:
    platform.logs_shape = "list"
    platform.add_job("Fotxeb", log_lines=["a", "b", "c"])
    entries = list(client.paged("/api/v3/jobs/Fotxeb/logs/", what="logs"))
    assert [e["message"] for e in entries] == ["a", "b", "c"]
    assert platform.count() == 1


def test_next_that_loops_is_refused(platform: FakePlatform, client: Client) -> None:
    page = {"count": 9, "previous": None, "results": [{"id": "Aaa"}],
            "next": f"{platform.base_url}/api/v2/jobs/"}
    platform.inject("/api/v2/jobs/", *[Status(200, page)] * 5)
    with pytest.raises(PlatformError, match="does not end"):
        list(client.paged("/api/v2/jobs/", what="your jobs"))
    assert platform.count() == 1


def test_next_that_cycles_between_pages_is_refused(platform: FakePlatform, client: Client) -> None:
    page2 = f"{platform.base_url}/api/v2/jobs/?page=2"
    page3 = f"{platform.base_url}/api/v2/jobs/?page=3"
    faults = [Status(200, {"count": 9, "results": [], "next": link})
              for link in (page2, page3, page2, page3, page2)]
    platform.inject("/api/v2/jobs/", *faults)
    with pytest.raises(PlatformError, match="does not end"):
        list(client.paged("/api/v2/jobs/", what="your jobs"))
    assert platform.count() == 3


def test_next_to_another_origin_is_not_followed(platform: FakePlatform, client: Client) -> None:
    with FakePlatform() as other:
        platform.inject("/api/v2/jobs/", Status(200, {
            "count": 2, "results": [{"id": "Aaa"}],
            "next": f"{other.base_url}/api/v2/jobs/?page=2",
        }))
        with pytest.raises(PlatformError, match="another server") as caught:
            list(client.paged("/api/v2/jobs/", what="your jobs"))
        assert other.count() == 0, "nothing, least of all the key, went to the other server"
        assert "nothing was sent there" in (caught.value.hint or "")


# -- retries ---------------------------------------------------------------------------------


def test_429_honours_retry_after(platform: FakePlatform) -> None:
    sleeps = Sleeps()
    platform.inject(ME, Status(429, {"detail": "Request was throttled."},
                               headers={"Retry-After": "1"}))
    with make(platform, sleep=sleeps) as client:
        started = time.monotonic()
        assert client.get(ME, what="the user")["username"] == "me"
        elapsed = time.monotonic() - started
    assert sleeps == [1.0]
    assert 0.9 <= elapsed < 3
    assert platform.count() == 2


def test_429_retry_after_as_a_date(platform: FakePlatform) -> None:
    sleeps = Sleeps()
    when = email.utils.formatdate(time.time() + 1, usegmt=True)
    platform.inject(ME, Status(429, headers={"Retry-After": when}))
    with make(platform, sleep=sleeps) as client:
        client.get(ME, what="the user")
    assert len(sleeps) == 1
    assert 0 <= sleeps[0] <= 1.5


def test_429_without_retry_after_backs_off(platform: FakePlatform) -> None:
    sleeps = Sleeps()
    platform.inject(ME, Status(429), Status(429))
    with make(platform, sleep=sleeps, backoff=0.05) as client:
        client.get(ME, what="the user")
    assert len(sleeps) == 2
    assert 0.05 * 0.75 <= sleeps[0] <= 0.05 * 1.25
    assert 0.1 * 0.75 <= sleeps[1] <= 0.1 * 1.25, "exponential"
    assert platform.count() == 3


def test_retry_after_beyond_the_deadline_gives_up_at_once(platform: FakePlatform) -> None:
    sleeps = Sleeps()
    platform.inject(ME, Status(429, headers={"Retry-After": "3600"}))
    with make(platform, sleep=sleeps, deadline=5) as client, pytest.raises(PlatformError) as caught:
        client.get(ME, what="the user")
    assert sleeps == []
    assert "HTTP 429" in caught.value.message
    assert platform.count() == 1


@pytest.mark.parametrize("code", [502, 503, 504])
def test_gateway_errors_are_retried(platform: FakePlatform, client: Client, code: int) -> None:
    platform.inject(ME, Status(code, "<html>Bad Gateway</html>"))
    assert client.get(ME, what="the user")["username"] == "me"
    assert platform.count() == 2


def test_retries_are_bounded(platform: FakePlatform) -> None:
    platform.inject(ME, *[Status(503)] * 20)
    with make(platform, retries=3) as client, pytest.raises(PlatformError) as caught:
        client.get(ME, what="the user")
    assert platform.count() == 4
    assert "HTTP 503" in caught.value.message
    assert "gave up after 4 attempts" in caught.value.message
    assert caught.value.exit_code == ExitCode.UNAVAILABLE


def test_500_is_not_retried(platform: FakePlatform, client: Client) -> None:
    platform.inject(ME, Status(500, {"detail": "Server Error"}))
    with pytest.raises(PlatformError) as caught:
        client.get(ME, what="the user")
    assert "HTTP 500" in caught.value.message
    assert "Server Error" in caught.value.message
    assert platform.count() == 1


@pytest.mark.parametrize("fault", [Reset(), Truncated()], ids=["reset", "truncated"])
def test_cut_connections_are_retried(platform: FakePlatform, client: Client, fault: Fault
                                     ) -> None:
    platform.inject(ME, fault)
    assert client.get(ME, what="the user")["username"] == "me"
    assert platform.count() == 2


def test_a_hang_is_retried(platform: FakePlatform) -> None:
    platform.inject(ME, Hang(10))
    with make(platform, read_timeout=0.3) as client:
        assert client.get(ME, what="the user")["username"] == "me"
    assert platform.count() == 2


def test_a_platform_that_never_answers_fails_within_the_deadline(platform: FakePlatform) -> None:
    platform.inject(ME, *[Hang(10)] * 50)
    with make(platform, read_timeout=0.3, retries=50, deadline=1.5) as client:
        started = time.monotonic()
        with pytest.raises(PlatformError) as caught:
            client.get(ME, what="the user")
        elapsed = time.monotonic() - started
    assert elapsed < 1.5 + 0.3 + 0.5
    assert "timed out" in caught.value.message
    assert 2 <= platform.count() <= 6


def test_connection_refused_fails_quickly() -> None:
    client = Client(f"http://127.0.0.1:{closed_port()}", "some-key-123", connect_timeout=1,
                    read_timeout=1, retries=2, deadline=5, backoff=0.01)
    started = time.monotonic()
    with client, pytest.raises(PlatformError) as caught:
        client.get(ME, what="the user")
    assert time.monotonic() - started < 2
    assert "connection refused" in caught.value.message
    assert client.requests_made == 3


# -- hostile answers -------------------------------------------------------------------------


def test_malformed_answer_is_not_json(platform: FakePlatform, client: Client) -> None:
    platform.inject(ME, Malformed())
    with pytest.raises(PlatformError, match="not JSON"):
        client.get(ME, what="the user")
    assert platform.count() == 1


def test_huge_answer_is_cut_at_max_body(platform: FakePlatform) -> None:
    platform.inject(ME, Huge(4 * 1024 * 1024))
    with make(platform, max_body=1024 * 1024) as client, pytest.raises(PlatformError) as caught:
        client.get(ME, what="the user")
    assert "larger than 1 MiB" in caught.value.message
    assert platform.count() == 1


def test_huge_answer_within_max_body_is_read(platform: FakePlatform, client: Client) -> None:
    platform.inject(ME, Huge(200_000))
    assert len(client.get(ME, what="the user")["pad"]) > 100_000


# -- the key stays secret --------------------------------------------------------------------

SCENARIOS: dict[str, Callable[[FakePlatform], None]] = {
    "401": lambda p: p.inject(ME, Status(401, {"detail": "Invalid token."})),
    "403": lambda p: p.inject(ME, Status(403)),
    "404": lambda p: p.inject(ME, Status(404)),
    "500": lambda p: p.inject(ME, Status(500, {"detail": "oops"})),
    "503": lambda p: p.inject(ME, *[Status(503)] * 10),
    "hang": lambda p: p.inject(ME, *[Hang(5)] * 10),
    "reset": lambda p: p.inject(ME, *[Reset()] * 10),
    "truncated": lambda p: p.inject(ME, *[Truncated()] * 10),
    "malformed": lambda p: p.inject(ME, Malformed()),
    "huge": lambda p: p.inject(ME, Huge(2 * 1024 * 1024)),
    "echo": lambda p: p.inject(ME, Status(400, {"detail": f"bad Token {p.api_key}"})),
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_the_api_key_never_appears_in_errors_or_logs(
    platform: FakePlatform, scenario: str, caplog: pytest.LogCaptureFixture
) -> None:
    SCENARIOS[scenario](platform)
    caplog.set_level(logging.DEBUG)
    with make(platform, read_timeout=0.2, deadline=1, max_body=1024 * 1024) as client, \
            pytest.raises(RescaleSSHError) as caught:
        client.get(ME, what="the user")
    error = caught.value
    shown = f"{error}\n{error.message}\n{error.hint}\n{error!r}\n{caplog.text}"
    assert platform.api_key not in shown
    assert platform.api_key[:12] not in shown


# -- connections opened ahead (preconnect.py, issue 16) ------------------------------------------


def test_requests_take_the_connections_opened_ahead(platform: FakePlatform,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The hook opens its connections while it imports requests: the requests go out on them
    (the server sees them come from those very sockets) and nothing else is opened."""
    from rescale_ssh.platform import preconnect
    from rescale_ssh.platform.background import Background

    for name in preconnect.PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    platform.add_job("Ahead1")
    spare = preconnect.start(platform.base_url, count=2, timeout=5)
    assert spare is not None
    ahead = {spare.take(spare.host, spare.port) for _ in range(2)}
    assert None not in ahead
    ends = {sock.getsockname()[:2] for sock in ahead if sock is not None}
    spare._ready = [sock for sock in ahead if sock is not None]  # handed back, as if unused
    with Client(platform.base_url, platform.api_key, spare=spare) as client, \
            Background(lambda: client.get("/api/v2/jobs/Ahead1/", what="job")):
        client.get("/api/v2/jobs/Ahead1/", what="job")
    assert {r.peer for r in platform.requests} == ends
    assert spare.take(spare.host, spare.port) is None  # both taken, none left


def test_no_connection_ahead_through_a_proxy_or_to_another_host(
    platform: FakePlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rescale_ssh.platform import preconnect

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert preconnect.start("https://platform.rescale.com", count=1, timeout=1) is None
    monkeypatch.delenv("HTTPS_PROXY")
    for hostile in ("us", "https://-oProxyCommand=x/", "file:///etc/passwd"):
        assert preconnect.start(hostile, count=1, timeout=1) is None
    spare = preconnect.start(platform.base_url, count=1, timeout=5)
    assert spare is not None
    assert spare.take("127.0.0.2", spare.port) is None  # another host: its own connection
    spare.close()
