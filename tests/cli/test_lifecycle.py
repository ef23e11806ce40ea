"""Cluster lifecycle: jobs, status, wait, sync, prune, shell, multi-node, auto-termination."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.fakeplatform import Await, FakePlatform
from tests.helpers import Cli, require, ssh_config_of
from tests.sshd import SSHServer

FAST_POLL = {"RESCALE_SSH_POLL_INTERVAL": "0.2"}


def running_at(platform: FakePlatform, sshd: SSHServer, job: str, **extra: object) -> Path:
    workdir = sshd.new_workdir(job)
    platform.add_job(job, user=sshd.user, host=sshd.host, port=sshd.port, workdir=str(workdir),
                     **extra)  # type: ignore[arg-type]
    return workdir


def test_jobs_lists_owned_and_shared_running_first(cli: Cli, platform: FakePlatform) -> None:
    platform.max_page_size = 2  # several pages
    platform.add_job("Done1", status="Completed", cluster_status="Stopped")
    platform.add_job("Queue1", status="Queued", cluster_status="Not Started")
    platform.add_job("Run1", host="203.0.113.7", port=2200)
    platform.add_job("Shared1", host="203.0.113.8", shared=True, owner="colleague@example.com")
    platform.add_job("Up1", status="Completed", cluster_status="Started", host="203.0.113.9")
    rows = json.loads(cli("jobs", "--json").stdout)
    by_id = {row["id"]: row for row in rows}
    assert set(by_id) == {"Done1", "Queue1", "Run1", "Shared1", "Up1"}
    assert [row["id"] for row in rows[:3]] and {r["id"] for r in rows[:3]} == {
        "Run1", "Shared1", "Up1"}
    assert by_id["Run1"] | {} == {
        "id": "Run1", "alias": "rescale-Run1", "name": by_id["Run1"]["name"],
        "owner": "me@example.com", "shared": False, "submitted": by_id["Run1"]["submitted"],
        "status": "Executing", "cluster_status": "Started", "ssh": "ready",
        "user": "uprod_Run1", "host": "203.0.113.7", "port": 2200, "launch_key": "unknown",
        "notes": [],
    }
    assert by_id["Shared1"]["shared"] is True
    assert by_id["Shared1"]["owner"] == "colleague@example.com"
    assert by_id["Queue1"]["ssh"] == "not started"
    assert by_id["Done1"]["ssh"] == "stopped"
    assert by_id["Up1"]["ssh"] == "ready"
    assert "open sessions end when the cluster stops" in by_id["Up1"]["notes"][0]
    # Requests: the live jobs' pages (Queue1, Run1, Shared1: two of two), one page of completed
    # jobs (Done1, Up1), the instances of the three started clusters; users/me once.
    assert sorted(r.query.get("state", "") for r in platform.requests
                  if r.path == "/api/v2/jobs/") == ["completed", "not_completed", "not_completed"]
    assert platform.count("/api/v2/jobs/") == 2 + 1 + 3
    assert platform.count("/api/v2/users/me/") == 1
    table = cli("jobs")
    assert table.stdout.splitlines()[0].split() == ["JOB", "STATUS", "CLUSTER", "SSH", "ALIAS",
                                                    "NAME"]
    assert "note: job Up1 has completed but its cluster is still up" in table.stderr


def test_status_shows_everything(cli: Cli, platform: FakePlatform) -> None:
    platform.add_job("Multi1", workers=2, port=2222)
    data = json.loads(cli("status", "Multi1", "--json").stdout)
    assert data["status"] == "Executing"
    assert data["cluster_status"] == "Started"
    assert data["ssh"] == "ready"
    assert data["block"] == "none"
    assert data["head"] == {"user": "uprod_Multi1", "host": "203.0.113.7", "port": 2222}
    # MPI workers have private addresses only: reached through the head, on sshd's port.
    assert data["workers"] == [
        {"alias": "rescale-Multi1-1", "host": "10.0.0.11", "port": 22, "via": "head"},
        {"alias": "rescale-Multi1-2", "host": "10.0.0.12", "port": 22, "via": "head"},
    ]
    assert data["workdir"] == "/enc/uprod_Multi1/work"
    statuses = [e["status"] for e in data["statuses"]]
    assert statuses[0] == "Executing" and len(statuses) > 1  # newest first
    text = cli("status", "Multi1").stdout
    assert "worker     rescale-Multi1-1 → 10.0.0.11" in text
    cli("add", "Multi1")
    assert json.loads(cli("status", "Multi1", "--json").stdout)["block"] == "added"


def test_status_asks_for_everything_at_once(cli: Cli, platform: FakePlatform) -> None:
    """Each request answers only once another was made: asked for one after the other, the
    first never answers (issue 16: the round trips of one request, not of five)."""
    platform.add_job("Once1", workers=1)
    statuses, clusters = r"/jobs/Once1/statuses/", r"/cluster_statuses/"
    for path, other in ((statuses, "/instances/"), ("/instances/", statuses),
                        (clusters, "/logs/"), ("/logs/", clusters)):
        platform.inject(path, *[Await(other, seconds=1.5)] * 6)  # every attempt of each
    data = json.loads(cli("status", "Once1", "--json").stdout)
    assert (data["ssh"], data["status"], data["cluster_status"]) == (
        "ready", "Executing", "Started")
    assert data["head"] == {"user": "uprod_Once1", "host": "203.0.113.7", "port": 22}
    assert data["workdir"] == "/enc/uprod_Once1/work"


def test_status_of_a_queued_and_an_ended_job(cli: Cli, platform: FakePlatform) -> None:
    platform.add_job("Q1", status="Queued", cluster_status="Not Started")
    data = json.loads(cli("status", "Q1", "--json").stdout)
    assert data["ssh"] == "not started"
    assert "is Queued" in data["problem"]
    platform.add_job("E1", status="Completed", cluster_status="Started")
    ended = cli("status", "E1")
    assert "open sessions end when the cluster stops" in ended.stderr


def test_wait_follows_the_job_until_ssh_accepts(
    cli: Cli, platform: FakePlatform, sshd: SSHServer
) -> None:
    running_at(platform, sshd, "Boot1", status="Queued", cluster_status="Not Started",
               timeline=[(1.0, "Started", "Starting"), (2.0, "Executing", "Started")])
    started = time.monotonic()
    result = cli("wait", "Boot1", "--timeout", "30", env=FAST_POLL)
    assert time.monotonic() - started < 20
    assert result.stdout.strip() == "job Boot1 is ready: ssh rescale-Boot1"
    progress = result.stderr.splitlines()
    assert progress[0].startswith("waiting (0:00): job Boot1 is Queued")
    assert any("Started" in line or "Executing" in line for line in progress[1:])
    # Polite: no tight loop even at a 0.2 s interval with backoff.
    assert platform.count() < 60


def test_wait_times_out_naming_the_status(cli: Cli, platform: FakePlatform) -> None:
    platform.add_job("Stuck1", status="Queued", cluster_status="Not Started")
    result = cli("wait", "Stuck1", "--timeout", "1", env=FAST_POLL, expect=7)
    assert "rescale-ssh: error: still not ready after" in result.stderr
    assert "job Stuck1 is Queued" in result.stderr


def test_wait_ends_at_once_for_an_unknown_job(cli: Cli, platform: FakePlatform) -> None:
    assert "not found" in cli("wait", "Nope1", env=FAST_POLL, expect=5).stderr


def test_add_wait(cli: Cli, platform: FakePlatform, sshd: SSHServer, ssh_config: Path) -> None:
    running_at(platform, sshd, "Boot2", status="Queued", cluster_status="Not Started",
               timeline=[(1.0, "Executing", "Started")])
    cli("add", "Boot2", "--wait", "--timeout", "30", env=FAST_POLL)
    assert ssh_config_of(str(ssh_config), "rescale-Boot2")["port"] == [str(sshd.port)]


def test_sync_adds_running_and_drops_stopped_within_the_request_budget(
    cli: Cli, platform: FakePlatform, ssh_config: Path, isolated_home: Path
) -> None:
    cli("add", "Old1", "--from-log", "Command: ssh uprod_Old1@192.0.2.1")
    cli("add", "Gone1", "--from-log", "Command: ssh uprod_Gone1@192.0.2.2")
    known = isolated_home / ".local/state/rescale-ssh/known_hosts"
    known.write_text("rescale-old1 ssh-ed25519 AAAA\nrescale-keep ssh-ed25519 BBBB\n")
    platform.max_page_size = 2
    platform.add_job("Old1", status="Completed", cluster_status="Stopped")
    platform.add_job("Run1", host="203.0.113.11")
    platform.add_job("Run2", host="203.0.113.12", workers=2)
    platform.add_job("Run3", host="203.0.113.13")
    platform.add_job("Queue1", status="Queued", cluster_status="Not Started")
    before = ssh_config.read_bytes()
    dry = cli("sync", "--yes", "--dry-run")
    assert "+Host rescale-Run2-2" in dry.stdout
    assert "would be dropped: rescale-Gone1 (not found on the platform)" in dry.stdout
    assert ssh_config.read_bytes() == before
    platform.requests.clear()
    result = cli("sync", "--yes")
    assert sorted(line for line in result.stdout.splitlines() if line.startswith("Added")) == [
        "Added rescale-Run1", "Added rescale-Run2", "Added rescale-Run3"]
    assert "Dropped rescale-Old1 (Completed, cluster stopped)" in result.stdout
    assert "Dropped rescale-Gone1 (not found on the platform)" in result.stdout
    # Budget: the live jobs' pages (4 jobs, 2 a page) + one page of completed jobs (Old1) + the
    # instance pages of each started cluster (Run2 has a head and two workers: two pages) +
    # Gone1, in neither list, asked directly: its cluster's statuses, then its statuses (404).
    # (No job detail for the launch keys of the jobs it adds: there is no key of the user's to
    # compare them with; tests/platform/test_launch_key.py counts those.)
    assert platform.count("/api/v2/jobs/") == platform.count() == 2 + 1 + (1 + 2 + 1) + 2
    assert platform.count("/api/v2/jobs/Gone1/") == 2
    listed = {e["job"] for e in json.loads(cli("list", "--json").stdout)}
    assert listed == {"Run1", "Run2", "Run3"}
    assert ssh_config_of(str(ssh_config), "rescale-Run2-1")["proxyjump"] == ["rescale-Run2"]
    assert known.read_text() == "rescale-keep ssh-ed25519 BBBB\n"
    assert cli("sync", "--yes").stdout.strip() == "Nothing to change."


def test_prune_only_drops(cli: Cli, platform: FakePlatform, ssh_config: Path) -> None:
    cli("add", "Old2", "--from-log", "Command: ssh uprod_Old2@192.0.2.1")
    cli("add", "Live2", "--from-log", "Command: ssh uprod_Live2@192.0.2.3")
    platform.add_job("Old2", status="Completed", cluster_status="Stopping")
    platform.add_job("Live2", host="192.0.2.3")
    platform.add_job("New2")
    platform.requests.clear()
    result = cli("prune", "--yes")
    assert result.stdout.strip() == "Dropped rescale-Old2 (Completed, cluster stopping)"
    assert {e["job"] for e in json.loads(cli("list", "--json").stdout)} == {"Live2"}
    # The live list, then (Old2 is not on it) the page of recent completed jobs: no instances.
    assert [r.query.get("state") for r in platform.requests] == ["not_completed", "completed"]
    platform.requests.clear()
    assert cli("prune", "--yes").stdout.strip() == "Nothing to change."
    assert platform.count() == 1  # every block's job is live: only the live list


def test_prune_drops_records_of_jobs_reached_through_the_hook(
    cli: Cli, platform: FakePlatform, ssh_config: Path, isolated_home: Path
) -> None:
    platform.add_job("Hooked1")
    cli("install", "--yes")
    ssh_config_of(str(ssh_config), "rescale-Hooked1")
    state = isolated_home / ".local/state/rescale-ssh"
    assert list((state / "jobs").iterdir())
    platform.set_status("Hooked1", "Completed", "Stopped")
    assert "Dropped rescale-Hooked1" in cli("prune", "--yes").stdout
    assert not list((state / "jobs").iterdir())
    assert not (state / "fresh.conf").exists()  # its block went with the record


@pytest.mark.e2e
def test_shell_lands_in_the_working_directory(
    cli: Cli, platform: FakePlatform, sshd: SSHServer, ssh_config: Path
) -> None:
    workdir = running_at(platform, sshd, "Shell1")
    env = {"RESCALE_SSH_IDENTITY": str(sshd.client_key)}
    result = cli("shell", "Shell1", "-o", "BatchMode=yes", input="pwd\nexit 3\n", env=env,
                 expect=3)
    assert result.stdout.strip().splitlines()[-1] == str(workdir)
    assert "added rescale-Shell1" in result.stderr  # it had no block: added first
    again = cli("shell", "Shell1", "-o", "BatchMode=yes", input="pwd\n", env=env)
    assert again.stdout.strip().splitlines()[-1] == str(workdir)
    assert "added" not in again.stderr


@pytest.mark.e2e
def test_shell_warns_when_the_cluster_will_stop(
    cli: Cli, platform: FakePlatform, sshd: SSHServer
) -> None:
    running_at(platform, sshd, "Ending1", status="Completed", cluster_status="Started")
    env = {"RESCALE_SSH_IDENTITY": str(sshd.client_key)}
    result = cli("shell", "Ending1", "-o", "BatchMode=yes", input="true\n", env=env)
    assert "open sessions end when the cluster stops" in result.stderr


@pytest.mark.e2e
def test_workers_are_reached_through_the_head_node(
    cli: Cli, platform: FakePlatform, sshd: SSHServer, ssh_config: Path
) -> None:
    head = {"role": "MPI_MASTER", "publicIp": sshd.host, "sshPort": sshd.port,
            "username": sshd.user}
    # A private address only (a public one would be reached directly: resolver.routes).
    worker = {"role": "MPI_SLAVE", "privateIp": "127.0.0.1", "sshPort": sshd.port}
    platform.add_job("Nodes1", user=sshd.user, instances=[worker, head],
                     workdir=str(sshd.new_workdir("Nodes1")))
    cli("add", "Nodes1", env={"RESCALE_SSH_IDENTITY": str(sshd.client_key)})
    got = ssh_config_of(str(ssh_config), "rescale-Nodes1-1")
    assert got["hostname"] == ["127.0.0.1"]  # the private address, through the head
    assert got["proxyjump"] == ["rescale-Nodes1"]
    result = subprocess.run(
        [require("ssh"), "-F", str(ssh_config), "-o", "BatchMode=yes", "rescale-Nodes1-1",
         "echo", "worker"], capture_output=True, text=True, timeout=30,
        stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "worker"


def test_after_the_cluster_stops_the_hook_says_so(
    cli: Cli, platform: FakePlatform, ssh_config: Path
) -> None:
    platform.add_job("Stop1", status="Completed", cluster_status="Stopped")
    cli("install", "--yes")
    result = subprocess.run(
        [require("ssh"), "-F", str(ssh_config), "-o", "BatchMode=yes", "rescale-Stop1", "true"],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert result.returncode == 255
    assert result.stderr.startswith(
        "rescale-ssh: error: job Stop1 is Completed; its cluster is stopped")


def test_sync_keeps_the_working_directory_the_hook_learned(
    cli: Cli, platform: FakePlatform, ssh_config: Path
) -> None:
    platform.add_job("Learn1", workdir="/enc/uprod_Learn1/work/shared")
    cli("install", "--yes")
    ssh_config_of(str(ssh_config), "rescale-Learn1")  # the hook reads the job's logs
    cli("sync", "--yes")
    assert cli("path", "Learn1").stdout.strip() == "rescale-Learn1:/enc/uprod_Learn1/work/shared"
