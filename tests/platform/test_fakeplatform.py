"""The fake platform itself: if it lied, every test built on it would pass for nothing."""

from __future__ import annotations

import socket
import time
from typing import Any

import requests

from tests.fakeplatform import FakePlatform, Hang, Status

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJtZSJ9.c2lnbmF0dXJl"


def _get(platform: FakePlatform, path: str, auth: str | None = "token", **params: Any
         ) -> requests.Response:
    headers = {}
    if auth == "token":
        headers["Authorization"] = f"Token {platform.api_key}"
    elif auth is not None:
        headers["Authorization"] = auth
    url = path if path.startswith("http") else platform.base_url + path
    return requests.get(url, headers=headers, params=params, timeout=5)


def test_requests_need_the_api_key(platform: FakePlatform) -> None:
    missing = _get(platform, "/api/v2/users/me/", auth=None)
    wrong = _get(platform, "/api/v2/users/me/", auth="Token not-the-key")
    right = _get(platform, "/api/v2/users/me/")
    assert (missing.status_code, wrong.status_code, right.status_code) == (401, 401, 200)
    assert wrong.json() == {"detail": "Invalid token."}
    assert right.json()["email"] == "me@example.com"
    assert [r.authorization for r in platform.requests] == [
        None, "Token not-the-key", f"Token {platform.api_key}"
    ]


def test_a_jwt_key_must_come_as_bearer() -> None:
    with FakePlatform(api_key=JWT) as fake:
        assert _get(fake, "/api/v2/users/me/", auth=f"Token {JWT}").status_code == 401
        assert _get(fake, "/api/v2/users/me/", auth=f"Bearer {JWT}").status_code == 200


def test_paging_caps_page_size_and_links_absolutely(platform: FakePlatform) -> None:
    platform.max_page_size = 2
    for job in ("Aaa", "Bbb", "Ccc", "Ddd", "Eee"):
        platform.add_job(job)
    seen: list[str] = []
    url: str | None = "/api/v2/jobs/"
    params: dict[str, Any] = {"page_size": 1000}
    while url is not None:
        body = _get(platform, url, **params).json()
        assert body["count"] == 5
        assert len(body["results"]) <= 2
        seen += [item["id"] for item in body["results"]]
        url, params = body["next"], {}
        if url is not None:
            assert url.startswith(platform.base_url + "/api/v2/jobs/?")
    assert sorted(seen) == ["Aaa", "Bbb", "Ccc", "Ddd", "Eee"]
    assert platform.count("/api/v2/jobs/") == 3
    assert _get(platform, "/api/v2/jobs/", page=9).status_code == 404


def test_job_paths_answer_404_and_403(platform: FakePlatform) -> None:
    platform.add_job("Secret").forbidden = True
    for path in ("/api/v2/jobs/Nope/", "/api/v3/jobs/Nope/logs/", "/api/v2/jobs/Nope/instances/",
                 "/api/v2/nothing/"):
        answer = _get(platform, path)
        assert answer.status_code == 404, path
    answer = _get(platform, "/api/v2/jobs/Secret/instances/")
    assert answer.status_code == 403
    assert "permission" in answer.json()["detail"]


def test_statuses_are_newest_first_and_follow_the_timeline(platform: FakePlatform) -> None:
    platform.add_job("Tline", status="Queued", cluster_status="Not Started",
                     timeline=[(0.3, "Started", "Starting"), (0.6, "Executing", "Started")])
    assert _get(platform, "/api/v2/jobs/Tline/instances/").json()["results"] == []
    logs = [e["message"] for e in _get(platform, "/api/v3/jobs/Tline/logs/").json()["results"]]
    assert not any("ready for ssh" in line for line in logs)

    time.sleep(0.7)
    statuses = _get(platform, "/api/v2/jobs/Tline/statuses/").json()["results"]
    assert [s["status"] for s in statuses] == [
        "Executing", "Started", "Queued", "Waiting for Queue", "Pending"
    ]
    dates = [s["statusDate"] for s in statuses]
    assert dates == sorted(dates, reverse=True)
    cluster = _get(platform, "/api/v2/jobs/Tline/cluster_statuses/").json()["results"]
    assert [s["status"] for s in cluster] == ["Started", "Starting", "Not Started"]
    head = _get(platform, "/api/v2/jobs/Tline/instances/").json()["results"]
    assert head[0]["role"] == "MPI_MASTER"

    platform.set_status("Tline", "Completed", "Stopped")
    assert _get(platform, "/api/v2/jobs/Tline/instances/").json()["results"] == []
    logs = [e["message"] for e in _get(platform, "/api/v3/jobs/Tline/logs/").json()["results"]]
    assert any("ready for ssh" in line for line in logs), "the line stays after the stop"
    listed = _get(platform, "/api/v2/jobs/").json()["results"][0]
    assert listed["jobStatus"]["content"] == "Completed"
    assert listed["clusterStatusDisplay"]["content"] == "Stopped"


def test_instances_head_last_and_workers(platform: FakePlatform) -> None:
    platform.max_page_size = 1
    platform.add_job("Multi", workers=2, port=2222).head_last = True
    first = _get(platform, "/api/v2/jobs/Multi/instances/").json()
    assert first["count"] == 3
    assert first["results"][0]["role"] == "MPI_SLAVE"
    last = _get(platform, first["next"]).json()
    last = _get(platform, last["next"]).json()
    assert last["next"] is None
    assert last["results"][0]["role"] == "MPI_MASTER"
    assert last["results"][0]["sshPort"] == 2222
    platform.max_page_size = 100
    logs = _get(platform, "/api/v3/jobs/Multi/logs/", page_size=100).json()["results"]
    assert any("</path/to/key> -p 2222 uprod_Multi@203.0.113.7" in e["message"] for e in logs)


def test_logs_as_a_plain_list(platform: FakePlatform) -> None:
    platform.logs_shape = "list"
    platform.add_job("Plain", log_lines=["one", "two"])
    body = _get(platform, "/api/v3/jobs/Plain/logs/").json()
    assert [e["message"] for e in body] == ["one", "two"]


def test_faults_apply_in_order_then_stop(platform: FakePlatform) -> None:
    platform.add_job("Fotxeb")
    platform.inject(r"/statuses/$", Status(503), Status(429, headers={"Retry-After": "1"}))
    codes = [_get(platform, "/api/v2/jobs/Fotxeb/statuses/") for _ in range(3)]
    assert [c.status_code for c in codes] == [503, 429, 200]
    assert codes[1].headers["Retry-After"] == "1"
    assert _get(platform, "/api/v2/jobs/Fotxeb/").status_code == 200


def test_close_does_not_wait_for_a_hang() -> None:
    fake = FakePlatform()
    fake.inject("", Hang(30))
    port = int(fake.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(b"GET /api/v2/users/me/ HTTP/1.1\r\nHost: x\r\n\r\n")
        deadline = time.monotonic() + 5
        while fake.count() == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
        fake.close()
        assert time.monotonic() - started < 1.5
        assert conn.recv(100) == b"", "the hung connection is closed, without an answer"
