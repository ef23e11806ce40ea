"""Listing only what can be reached (issue 13, item 5): `jobs`, `sync`, `prune` and TAB ask the
platform for the live jobs (`state=not_completed`) and one page of recent completed ones, never a
user's whole history; a platform that ignores the filter gives the same answers; shared jobs
are told by `owner` (against users/me, cached) and `sharedWith`; a block whose job is in
neither list is asked about directly."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fakeplatform import COLLEAGUE, FakePlatform, Hang, Status
from tests.helpers import Cli, require

LOOK_BACK = 100  # joblist.LOOK_BACK: the page of completed jobs looked at


def history(platform: FakePlatform, count: int, prefix: str = "Done") -> None:
    """``count`` completed jobs with stopped clusters, each newer than the ones before."""
    for i in range(count):
        platform.add_job(f"{prefix}{i:05d}", status="Completed", cluster_status="Stopped")


def list_requests(platform: FakePlatform) -> list[dict[str, str]]:
    return [r.query for r in platform.requests if r.path == "/api/v2/jobs/"]


def jobs_json(cli: Cli) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in json.loads(cli("jobs", "--json").stdout)}


def test_the_fake_lists_like_the_platform(platform: FakePlatform) -> None:
    """No isShared; owner and sharedWith as Rescale documents them; the state filter."""
    import requests

    platform.add_job("Mine1", status="Completed", cluster_status="Stopped")
    platform.add_job("Theirs1", owner=COLLEAGUE, shared=True)
    headers = {"Authorization": f"Token {platform.api_key}"}

    def ids(**query: str) -> list[str]:
        body = requests.get(f"{platform.base_url}/api/v2/jobs/", params=query, headers=headers,
                            timeout=10).json()
        return [item["id"] for item in body["results"]]

    body = requests.get(f"{platform.base_url}/api/v2/jobs/", headers=headers, timeout=10).json()
    items = {item["id"]: item for item in body["results"]}
    assert all("isShared" not in item for item in items.values())
    assert items["Theirs1"]["owner"] == COLLEAGUE
    assert items["Theirs1"]["sharedWith"] == [platform.email]
    assert items["Mine1"]["sharedWith"] == []
    assert ids() == ["Theirs1", "Mine1"]  # newest first
    assert ids(state="not_completed") == ["Theirs1"]
    assert ids(state="completed") == ["Mine1"]
    platform.list_order = "oldest"
    assert ids() == ["Mine1", "Theirs1"]
    platform.list_filter = "ignore"
    assert ids(state="completed") == ["Mine1", "Theirs1"]


def test_shared_is_told_by_owner_and_shared_with(cli: Cli, platform: FakePlatform) -> None:
    """The real list has no isShared (every job showed shared: null): a job is shared when its
    owner is someone else (users/me) or its owner shared it (sharedWith)."""
    platform.add_job("Mine1")
    platform.add_job("Lent1", shared=True)  # mine, shared with a colleague
    platform.add_job("Theirs1", owner=COLLEAGUE)  # someone else's, sharedWith not shown to me
    platform.add_job("Theirs2", owner=COLLEAGUE.upper(), shared=True)
    rows = jobs_json(cli)
    assert {job: row["shared"] for job, row in rows.items()} == {
        "Mine1": False, "Lent1": True, "Theirs1": True, "Theirs2": True}
    assert rows["Theirs1"]["owner"] == COLLEAGUE
    # The username counts as well as the email.
    platform.add_job("Mine2", owner=platform.username)
    assert jobs_json(cli)["Mine2"]["shared"] is False


def test_without_users_me_only_shared_with_tells(cli: Cli, platform: FakePlatform,
                                                 isolated_home: Path) -> None:
    platform.add_job("Mine1")
    platform.add_job("Lent1", shared=True)
    platform.inject("/api/v2/users/me/", Status(404))
    rows = jobs_json(cli)
    assert rows["Lent1"]["shared"] is True
    assert rows["Mine1"]["shared"] is None  # not known: not guessed
    assert not (state_dir(isolated_home) / "me").exists()
    assert jobs_json(cli)["Mine1"]["shared"] is False  # asked again, and answered this time


def state_dir(home: Path) -> Path:
    return home / ".local/state/rescale-ssh"


def test_users_me_is_cached(cli: Cli, platform: FakePlatform, isolated_home: Path,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    platform.add_job("Theirs1", owner=COLLEAGUE)
    assert jobs_json(cli)["Theirs1"]["shared"] is True
    assert platform.count("/api/v2/users/me/") == 1
    assert jobs_json(cli)["Theirs1"]["shared"] is True
    assert platform.count("/api/v2/users/me/") == 1, "the second run asks no users/me"
    cache = state_dir(isolated_home) / "me"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    text = cache.read_text()
    assert platform.api_key not in text
    assert "email=me@example.com" in text and "username=me" in text
    # Older than a day: asked again.
    old = int(time.time()) - 25 * 3600
    lines = [f"checked={old}" if line.startswith("checked=") else line
             for line in text.splitlines()]
    cache.write_text("\n".join(lines) + "\n")
    jobs_json(cli)
    assert platform.count("/api/v2/users/me/") == 2
    # Another key is another user: asked again, never the cached names.
    platform.api_key = "another-key-0123456789"
    monkeypatch.setenv("RESCALE_API_KEY", platform.api_key)
    platform.email = COLLEAGUE
    assert jobs_json(cli)["Theirs1"]["shared"] is False
    assert platform.count("/api/v2/users/me/") == 3
    # `sync` and `prune` do not need to know who you are.
    cli("sync", "--yes")
    cli("prune", "--yes")
    assert platform.count("/api/v2/users/me/") == 3
    cli("uninstall", "--yes")
    assert not cache.exists(), "uninstall takes it with the other state files"


def test_the_same_jobs_whether_the_filter_is_honoured_or_ignored(
    cli: Cli, platform: FakePlatform, ssh_config: Path
) -> None:
    platform.max_page_size = 10  # so the look-back is the newest 10 completed jobs
    history(platform, 30)
    platform.add_job("Up1", status="Completed", cluster_status="Started", host="203.0.113.9")
    platform.add_job("Run1", host="203.0.113.7")
    platform.add_job("Queue1", status="Queued", cluster_status="Not Started")
    platform.add_job("Stop1", status="Stopping", cluster_status="Stopping")
    seen = {}
    for list_filter in ("honour", "ignore"):
        platform.list_filter = list_filter
        platform.requests.clear()
        rows = jobs_json(cli)
        seen[list_filter] = [(row["id"], row["ssh"], row["shared"]) for row in rows.values()]
        # Honoured: 3 live jobs, one page; one page of completed ones. Ignored: every job on
        # the "live" pages (34 at 10 a page), and the completed page as well.
        assert len(list_requests(platform)) == (1 + 1 if list_filter == "honour" else 4 + 1)
    assert seen["honour"] == seen["ignore"]
    rows = {job: ssh for job, ssh, _ in seen["honour"]}
    assert rows == {"Up1": "ready", "Run1": "ready", "Queue1": "not started",
                    "Stop1": "stopped", **{f"Done{i:05d}": "stopped" for i in range(21, 30)}}
    assert {job for job, _, _ in seen["honour"][:2]} == {"Run1", "Up1"}  # running first
    for list_filter in ("ignore", "honour"):
        platform.list_filter = list_filter
        ssh_config.unlink(missing_ok=True)
        result = cli("sync", "--yes")
        assert sorted(line for line in result.stdout.splitlines()
                      if line.startswith("Added")) == ["Added rescale-Run1", "Added rescale-Up1"]


def test_the_look_back_finds_a_completed_job_whose_cluster_is_up(
    cli: Cli, platform: FakePlatform, ssh_config: Path
) -> None:
    """Automatic termination off: the job completed, its cluster runs on. It is among the
    newest completed jobs, so `jobs` shows it ready and `sync` writes its block; a completed
    job older than the look-back is not listed at all."""
    platform.add_job("Ancient1", status="Completed", cluster_status="Started",
                     host="203.0.113.20")
    history(platform, LOOK_BACK)  # the look-back is full of newer ones
    platform.add_job("Kept1", status="Completed", cluster_status="Started", host="203.0.113.21")
    history(platform, 5, prefix="Late")
    platform.add_job("Run1", host="203.0.113.22")
    rows = jobs_json(cli)
    assert rows["Kept1"]["ssh"] == "ready"
    assert "open sessions end when the cluster stops" in rows["Kept1"]["notes"][0]
    assert "Ancient1" not in rows
    assert len(rows) == 1 + LOOK_BACK  # Run1 and the newest 100 completed jobs
    completed = [q for q in list_requests(platform) if q.get("state") == "completed"]
    assert completed == [{"state": "completed", "page_size": str(LOOK_BACK)}]
    result = cli("sync", "--yes")
    assert "Added rescale-Kept1" in result.stdout and "Added rescale-Run1" in result.stdout
    assert "Ancient1" not in result.stdout


def test_the_look_back_on_a_platform_listing_oldest_first(
    cli: Cli, platform: FakePlatform
) -> None:
    platform.list_order = "oldest"
    history(platform, 2 * LOOK_BACK + 50)
    platform.add_job("Kept1", status="Completed", cluster_status="Started", host="203.0.113.21")
    rows = jobs_json(cli)
    assert rows["Kept1"]["ssh"] == "ready"
    assert f"Done{2 * LOOK_BACK + 49:05d}" in rows and "Done00000" not in rows
    # The first page showed rising dates: the last page (51 jobs) and the one before it.
    pages = [q.get("page") for q in list_requests(platform) if q.get("state") == "completed"]
    assert pages == [None, "3", "2"]


def test_prune_asks_the_jobs_neither_list_shows(
    cli: Cli, platform: FakePlatform, ssh_config: Path
) -> None:
    """A block of a job completed long ago (older than the look-back): asked directly, one
    request (its cluster's statuses), and dropped; one whose cluster is still up stays; one
    the platform does not know is dropped; one it will not tell about stays, with a note."""
    for job in ("Old1", "OldUp1", "Gone1", "Secret1", "Recent1", "Live1"):
        cli("add", job, "--from-log", f"Command: ssh uprod_{job}@192.0.2.1")
    platform.add_job("Old1", status="Completed", cluster_status="Stopped")
    platform.add_job("OldUp1", status="Completed", cluster_status="Started")
    platform.add_job("Secret1", status="Completed", cluster_status="Stopped").forbidden = True
    history(platform, LOOK_BACK)
    platform.add_job("Recent1", status="Completed", cluster_status="Stopped")
    platform.add_job("Live1")
    platform.requests.clear()
    result = cli("prune", "--yes")
    assert sorted(result.stdout.splitlines()) == [
        "Dropped rescale-Gone1 (not found on the platform)",
        "Dropped rescale-Old1 (cluster stopped)",
        "Dropped rescale-Recent1 (Completed, cluster stopped)",
    ]
    assert "note: kept rescale-Secret1: could not check job Secret1" in result.stderr
    assert {e["job"] for e in json.loads(cli("list", "--json").stdout)} == {
        "OldUp1", "Secret1", "Live1"}
    paths = sorted(r.path for r in platform.requests if r.path != "/api/v2/jobs/")
    assert paths == [
        "/api/v2/jobs/Gone1/cluster_statuses/", "/api/v2/jobs/Gone1/statuses/",
        "/api/v2/jobs/Old1/cluster_statuses/", "/api/v2/jobs/OldUp1/cluster_statuses/",
        "/api/v2/jobs/Secret1/cluster_statuses/",
    ]
    assert len(list_requests(platform)) == 2  # the live list and the look-back, once each


def test_sync_drops_an_old_completed_jobs_hook_record(
    cli: Cli, platform: FakePlatform, ssh_config: Path, isolated_home: Path
) -> None:
    platform.add_job("Hooked1")
    cli("install", "--yes")
    subprocess.run([require("ssh"), "-G", "-F", str(ssh_config), "rescale-Hooked1"], check=True,
                   capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    assert list((state_dir(isolated_home) / "jobs").iterdir())
    platform.set_status("Hooked1", "Completed", "Stopped")
    history(platform, LOOK_BACK)
    result = cli("sync", "--yes")
    assert "Dropped rescale-Hooked1 (cluster stopped; reached through the hook)" \
        in result.stdout
    assert not list((state_dir(isolated_home) / "jobs").iterdir())


def test_requests_with_thousands_of_jobs(cli: Cli, platform: FakePlatform,
                                         ssh_config: Path) -> None:
    """A long history costs nothing: (pages of live jobs) + 1 + (one request per live job)."""
    history(platform, 2000)
    for i in range(5):
        platform.add_job(f"Run{i}", host=f"203.0.113.{30 + i}")
    platform.add_job("Queue1", status="Queued", cluster_status="Not Started")
    budget = 1 + 1 + 5  # Queue1 has no cluster to look at
    cli("jobs")  # users/me, once a day
    platform.requests.clear()
    rows = jobs_json(cli)
    assert platform.count() == budget, [r.path for r in platform.requests]
    assert sum(row["ssh"] == "ready" for row in rows.values()) == 5
    platform.requests.clear()
    assert sum(line.startswith("Added") for line in cli("sync", "--yes").stdout.splitlines()) == 5
    assert platform.count() == budget
    # The same platform ignoring the filter: every page of the history, the same answer.
    platform.list_filter = "ignore"
    platform.requests.clear()
    assert cli("sync", "--yes").stdout.strip() == "Nothing to change."
    assert platform.count() == -(-2006 // 100) + 1 + 5


def complete(prefix: str, env: dict[str, str] | None = None, command: str = "remove"
             ) -> tuple[list[str], float]:
    merged = {**os.environ, **(env or {}), "_RESCALE_SSH_COMPLETE": "complete_bash",
              "COMP_WORDS": f"rescale-ssh {command} {prefix}", "COMP_CWORD": "2"}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "rescale_ssh"], capture_output=True,
                          text=True, timeout=60, env=merged)
    return proc.stdout.split(), time.monotonic() - started


def test_job_ids_complete_from_the_live_list(cli: Cli, platform: FakePlatform) -> None:
    cli("add", "Fblock", "--from-log", "Command: ssh uprod_Fblock@192.0.2.1")
    platform.add_job("Frun1")
    platform.add_job("Fqueue1", status="Queued", cluster_status="Not Started")
    platform.add_job("Fdone1", status="Completed", cluster_status="Stopped")
    platform.add_job("Other1")
    platform.requests.clear()
    found, _ = complete("F")
    assert found == ["Fblock", "Fqueue1", "Frun1"]
    assert [(r.path, r.query.get("state")) for r in platform.requests] == [
        ("/api/v2/jobs/", "not_completed")]  # one request, no instances
    platform.list_filter = "ignore"
    assert complete("F", command="add")[0] == ["Fblock", "Fqueue1", "Frun1"]


def test_job_id_completion_is_bounded_in_time(cli: Cli, platform: FakePlatform) -> None:
    cli("add", "Fblock", "--from-log", "Command: ssh uprod_Fblock@192.0.2.1")
    platform.add_job("Frun1")
    platform.inject("/api/v2/jobs/", Hang(30))
    found, took = complete("F")
    assert found == ["Fblock"]  # the local IDs, the platform's silence cut short
    assert took < 10
    # No key: local files only (test_docs checks requests is not even imported).
    env = {"RESCALE_API_KEY": "", "RESCALE_API_URL": ""}
    platform.requests.clear()
    assert complete("F", env=env)[0] == ["Fblock"]
    assert platform.count() == 0

