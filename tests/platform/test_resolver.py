"""resolve() against every variant of the platform that rescale-api.md allows."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from rescale_ssh.errors import (
    AuthError,
    InvalidValueError,
    NotFoundError,
    NotReadyError,
    PlatformError,
)
from rescale_ssh.platform.client import Client
from rescale_ssh.platform.resolver import resolve
from rescale_ssh.target import Target
from tests.fakeplatform import Await, FakePlatform, Fault, Status

HOST = "203.0.113.7"


@pytest.fixture
def client(platform: FakePlatform) -> Iterator[Client]:
    with Client(platform.base_url, platform.api_key, connect_timeout=1, read_timeout=1,
                retries=2, deadline=5, backoff=0.01) as made:
        yield made


def line(user: str, host: str = HOST, *, workdir: str | None = None, options: str = "") -> str:
    text = f"Instance ready for ssh access. Command: ssh -i </path/to/key>{options} {user}@{host}"
    return text if workdir is None else f"{text}; working directory: {workdir}"


def head(**fields: Any) -> dict[str, Any]:
    instance = {"role": "MPI_MASTER", "publicIp": HOST, "username": "uprod_Fotxeb",
                "sshPort": 22, "clusterId": "cl-1", "publicHostname": "n0.example.com"}
    instance.update(fields)
    return {k: v for k, v in instance.items() if v is not None}


# -- the common case -------------------------------------------------------------------------


def test_common_case_takes_two_requests(platform: FakePlatform, client: Client) -> None:
    platform.add_job("Fotxeb", workers=3)
    target = resolve(client, "Fotxeb")
    # MPI workers (private addresses only) are reached through the head node.
    assert target == Target("Fotxeb", "uprod_Fotxeb", HOST, 22, "/enc/uprod_Fotxeb/work",
                            workers=(("10.0.0.11", 22, True), ("10.0.0.12", 22, True),
                                     ("10.0.0.13", 22, True)))
    assert platform.count() == 2
    assert sorted(r.path for r in platform.requests) == [  # sent at once: in either order
        "/api/v2/jobs/Fotxeb/instances/", "/api/v3/jobs/Fotxeb/logs/"
    ]


def test_a_shared_job_resolves_like_an_own_one(platform: FakePlatform, client: Client) -> None:
    platform.add_job("Sharedj", owner="colleague@example.com", shared=True, user="uprod_x1")
    assert resolve(client, "Sharedj").user == "uprod_x1"


@pytest.mark.parametrize("shape", ["envelope", "list"])
def test_working_directory_from_the_logs(platform: FakePlatform, client: Client, shape: str
                                         ) -> None:
    platform.logs_shape = shape
    platform.add_job("Fotxeb", workdir="/enc/uprod_Fotxeb/work/shared")
    assert resolve(client, "Fotxeb").workdir == "/enc/uprod_Fotxeb/work/shared"
    assert platform.count() == 2


def test_head_node_on_a_later_page(platform: FakePlatform, client: Client) -> None:
    platform.max_page_size = 1
    platform.add_job("Bigjob", workers=3, host="198.51.100.20").head_last = True
    target = resolve(client, "Bigjob")
    assert target.host == "198.51.100.20"
    assert platform.count("/api/v2/jobs/Bigjob/instances/") == 4
    pages = [r.query.get("page") for r in platform.requests if r.path.endswith("/instances/")]
    assert pages == [None, "2", "3", "4"]
    assert platform.count("/api/v2/jobs/Bigjob/statuses/") == 0, "found by role, not by log"


def test_single_instance_without_role(platform: FakePlatform, client: Client) -> None:
    platform.add_job("Solo", instances=[{"publicIp": "198.51.100.9", "username": "uprod_Solo"}])
    target = resolve(client, "Solo")
    assert (target.user, target.host, target.port) == ("uprod_Solo", "198.51.100.9", 22)


def test_workers_without_public_address_are_skipped(platform: FakePlatform, client: Client
                                                    ) -> None:
    instances = [{"role": "MPI_SLAVE", "privateIp": "10.0.0.2"},
                 head(username="uprod_Mix", publicIp="198.51.100.30")]
    platform.add_job("Mix", instances=instances)
    assert resolve(client, "Mix").host == "198.51.100.30"


def test_public_hostname_without_public_ip(platform: FakePlatform, client: Client) -> None:
    instance = head(publicIp=None, publicHostname="ec2-203-0-113-7.compute.example.com",
                    username="uprod_Named")
    platform.add_job("Named", instances=[instance])
    assert resolve(client, "Named").host == "ec2-203-0-113-7.compute.example.com"


@pytest.mark.parametrize(("given", "expected"), [(2222, 2222), ("2200", 2200), (None, 22)])
def test_ssh_port(platform: FakePlatform, client: Client, given: object, expected: int) -> None:
    platform.add_job("Porty", instances=[head(username="uprod_Porty", sshPort=given)])
    assert resolve(client, "Porty").port == expected


def test_username_missing_in_instances_comes_from_the_log(platform: FakePlatform, client: Client
                                                          ) -> None:
    platform.add_job("Nouser", user="uprod_fromlog", instances=[head(username=None)],
                     workdir="/enc/uprod_fromlog/work/shared")
    target = resolve(client, "Nouser")
    assert (target.user, target.workdir) == ("uprod_fromlog", "/enc/uprod_fromlog/work/shared")


def test_no_username_anywhere_is_an_error(platform: FakePlatform, client: Client) -> None:
    platform.add_job("Nouser", instances=[head(username=None)], log_lines=["Cluster started"])
    with pytest.raises(PlatformError, match="which user"):
        resolve(client, "Nouser")


def test_a_log_line_for_another_user_does_not_set_the_workdir(
    platform: FakePlatform, client: Client
) -> None:
    platform.add_job("Other", log_lines=[line("someone_else", workdir="/enc/someone_else/x")])
    assert resolve(client, "Other").workdir == "/enc/uprod_Other/work"


# -- the working directory falls back when the logs fail -------------------------------------


@pytest.mark.parametrize(
    "faults",
    [
        [Status(404, {"detail": "Not found."})],
        [Status(500)],
        [Status(503)] * 10,
    ],
    ids=["404", "500", "503-forever"],
)
def test_workdir_falls_back_when_logs_fail(
    platform: FakePlatform, client: Client, faults: list[Fault]
) -> None:
    platform.add_job("Fotxeb", workdir="/enc/uprod_Fotxeb/work/shared")
    platform.inject("/logs/", *faults)
    target = resolve(client, "Fotxeb")
    assert (target.user, target.host, target.workdir) == (
        "uprod_Fotxeb", HOST, "/enc/uprod_Fotxeb/work"
    )


def test_workdir_falls_back_without_the_line(platform: FakePlatform, client: Client) -> None:
    platform.add_job("Fotxeb", log_lines=["Job submitted", "Cluster started"])
    assert resolve(client, "Fotxeb").workdir == "/enc/uprod_Fotxeb/work"


# -- not ready, not found --------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["mpi", "custom"])
def test_the_instances_and_the_logs_are_asked_for_at_once(
    platform: FakePlatform, client: Client, kind: str
) -> None:
    """Each answers only once the other was asked for: asked one after the other, the first
    never answers (issue 16: a cold ssh waits ~3 round trips for the platform, not ~5). With
    roles that do not tell the head (custom), the log line still picks it."""
    platform.add_job("Both1", kind=kind, workers=2)
    for path, other in (("/instances/", "/logs/"), ("/logs/", "/instances/")):
        platform.inject(path, *[Await(other, seconds=2.0)] * 3)  # every attempt of each
    target = resolve(client, "Both1")
    assert (target.host, target.workdir) == (HOST, "/enc/uprod_Both1/work")
    assert platform.count() == 2


def test_queued_job_is_not_ready(platform: FakePlatform, client: Client) -> None:
    platform.add_job("Waits", status="Queued", cluster_status="Not Started")
    with pytest.raises(NotReadyError) as caught:
        resolve(client, "Waits")
    assert caught.value.message == "job Waits is Queued; the cluster is not started yet"
    assert caught.value.hint


def test_completed_job_with_stopped_cluster(platform: FakePlatform, client: Client) -> None:
    job = platform.add_job("Done", status="Completed", cluster_status="Stopped")
    assert any("ready for ssh" in e["message"] for e in job.logs()), "the stale line is there"
    with pytest.raises(NotReadyError) as caught:
        resolve(client, "Done")
    assert "Completed" in caught.value.message
    assert "stopped" in caught.value.message
    # The logs are asked for alongside the instances (issue 16: one round trip, not two); the
    # stale line in them is not what decides.
    assert platform.count("/api/v3/") <= 1


def test_a_starting_job_becomes_ready(platform: FakePlatform, client: Client) -> None:
    platform.add_job("Soon", status="Queued", cluster_status="Not Started",
                     timeline=[(0.2, "Started", "Starting"), (0.4, "Executing", "Started")])
    with pytest.raises(NotReadyError):
        resolve(client, "Soon")
    time.sleep(0.5)
    assert resolve(client, "Soon").host == HOST


def test_unknown_job(platform: FakePlatform, client: Client) -> None:
    with pytest.raises(NotFoundError) as caught:
        resolve(client, "Nope")
    assert caught.value.message == f"job Nope not found on {platform.base_url}"


def test_forbidden_job(platform: FakePlatform, client: Client) -> None:
    platform.add_job("Theirs").forbidden = True
    with pytest.raises(AuthError, match="permission"):
        resolve(client, "Theirs")


# -- an older platform without /instances/ ---------------------------------------------------


def test_old_platform_running_job_uses_the_log_line(platform: FakePlatform, client: Client
                                                    ) -> None:
    platform.instances_endpoint = False
    platform.add_job("Oldie", port=2222, host="198.51.100.40",
                     workdir="/enc/uprod_Oldie/work/shared")
    target = resolve(client, "Oldie")
    assert target == Target("Oldie", "uprod_Oldie", "198.51.100.40", 2222,
                            "/enc/uprod_Oldie/work/shared")


def test_old_platform_takes_the_newest_line(platform: FakePlatform, client: Client) -> None:
    platform.instances_endpoint = False
    platform.add_job("Again", log_lines=[
        line("uprod_Again", "198.51.100.1", workdir="/enc/uprod_Again/work"),
        "Cluster restarted",
        line("uprod_Again", "198.51.100.2", workdir="/enc/uprod_Again/work", options=" -p 2022"),
    ])
    target = resolve(client, "Again")
    assert (target.host, target.port) == ("198.51.100.2", 2022)


@pytest.mark.parametrize(
    ("status", "cluster", "expected"),
    [
        ("Queued", "Not Started", "not started yet"),
        ("Completed", "Stopped", "stopped"),
        ("Executing", "Stopping", "stopping"),
    ],
)
def test_old_platform_does_not_trust_the_line_of_a_stopped_cluster(
    platform: FakePlatform, client: Client, status: str, cluster: str, expected: str
) -> None:
    platform.instances_endpoint = False
    platform.add_job("Oldie", status=status, cluster_status=cluster,
                     log_lines=[line("uprod_Oldie", workdir="/enc/uprod_Oldie/work")])
    with pytest.raises(NotReadyError, match=expected):
        resolve(client, "Oldie")


def test_old_platform_running_without_line_is_not_ready(platform: FakePlatform, client: Client
                                                        ) -> None:
    platform.instances_endpoint = False
    platform.add_job("Oldie", status="Started", cluster_status="Starting")
    with pytest.raises(NotReadyError):
        resolve(client, "Oldie")


# -- hostile values from the platform --------------------------------------------------------


@pytest.mark.parametrize(
    ("instance", "field"),
    [
        (head(username="root\nProxyCommand x"), "user name"),
        (head(username="-oProxyCommand=x"), "user name"),
        (head(publicIp="1.2.3.4 -oProxyCommand=x"), "host"),
        (head(publicIp="203.0.113.7\nProxyCommand x"), "host"),
        (head(publicIp=None, publicHostname="ехаmple.com"), "host"),  # Cyrillic е, х, а
        (head(publicIp="２０３.０.１１３.７"), "host"),  # fullwidth digits
        (head(publicIp="%h.example.com"), "host"),
        (head(sshPort=0), "port"),
        (head(sshPort="22x"), "port"),
        (head(sshPort=70000), "port"),
        (head(sshPort=True), "port"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_hostile_instance_values(platform: FakePlatform, client: Client,
                                 instance: dict[str, Any], field: str) -> None:
    platform.add_job("Evil", user="uprod_Fotxeb", instances=[instance])
    with pytest.raises(InvalidValueError) as caught:
        resolve(client, "Evil")
    assert caught.value.field == field
    assert "job Evil" in caught.value.message
    assert "\n" not in caught.value.message


@pytest.mark.parametrize(
    "workdir", ["/enc/u/work$(reboot)", "/enc/u/%d", "enc/u/work", "/enc/u/w\x00rk",
                "/enc/u/`id`", "/enc/u//work"]
)
def test_hostile_working_directory(platform: FakePlatform, client: Client, workdir: str) -> None:
    platform.add_job("Evil", user="u", workdir=workdir)
    with pytest.raises(InvalidValueError) as caught:
        resolve(client, "Evil")
    assert caught.value.field == "working directory"


def test_a_newline_cuts_the_working_directory(platform: FakePlatform, client: Client) -> None:
    # The log parser works line by line: what follows a newline is never part of the value.
    platform.add_job("Evil", user="u", workdir="/enc/u/work\nProxyCommand x")
    assert resolve(client, "Evil").workdir == "/enc/u/work"


@pytest.mark.parametrize(
    ("log", "field"),
    [
        (line("root\x00x", workdir="/enc/u/work"), "user name"),
        (line("u", "1.2.3.4%h", workdir="/enc/u/work"), "host"),
        (line("u", "ехаmple.com", workdir="/enc/u/work"), "host"),
        (line("u", workdir="/enc/u/work", options=" -p 22x"), "port"),
        (line("u", workdir="/enc/u/work", options=" -p 0"), "port"),
        (line("u", workdir="/enc/u/$HOME"), "working directory"),
    ],
)
def test_hostile_log_line_on_an_old_platform(platform: FakePlatform, client: Client, log: str,
                                             field: str) -> None:
    platform.instances_endpoint = False
    platform.add_job("Evil", log_lines=[log])
    with pytest.raises(InvalidValueError) as caught:
        resolve(client, "Evil")
    assert caught.value.field == field
