"""Issue 15 item 2: a cluster launched with a key other than the user's (the key never pasted
into Job Settings, or pasted after submitting) is named by status, jobs, add, sync, shell and
code, not only by doctor; and nothing of it ever makes them fail. Plus status times with a zone
and JSON nulls where nothing is meant (not "")."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import stat
from pathlib import Path

import pytest

from tests.fakeplatform import FakePlatform, Status
from tests.helpers import Cli, fingerprint, keygen
from tests.sshd import SSHServer

JOB = "Kdiff1"


@pytest.fixture
def mine(cli: Cli, isolated_home: Path) -> Path:
    """The user's key at the default identity."""
    cli("key", "generate", "--no-passphrase")
    return isolated_home / ".ssh" / "rescale_ed25519"


@pytest.fixture
def other(tmp_path: Path) -> Path:
    return keygen(tmp_path / "other" / "id_ed25519", "rsa-key-20191205")


def pub(path: Path, comment: str | None = None) -> str:
    text = Path(f"{path}.pub").read_text().strip()
    if comment is not None:  # another comment: keys are compared without it
        text = " ".join([*text.split()[:2], comment])
    return text


def detail_requests(platform: FakePlatform, job: str | None = None) -> int:
    pattern = re.compile(rf"^/api/v2/jobs/{job or '[^/]+'}/$")
    return sum(1 for r in platform.requests if pattern.match(r.path))


def warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("rescale-ssh: warning: ")]


# -- status -------------------------------------------------------------------------------------


def test_status_says_the_cluster_has_another_key(cli: Cli, platform: FakePlatform, mine: Path,
                                                 other: Path) -> None:
    platform.add_job(JOB, public_key=pub(other))
    result = cli("status", JOB)
    line = next(x for x in result.stdout.splitlines() if x.startswith("launch key"))
    assert line == (f"launch key differs: the cluster has {fingerprint(other)}, not your key "
                    f"{fingerprint(mine)}")
    assert "rescale-ssh key show" in result.stderr and "submit the job again" in result.stderr
    data = json.loads(cli("status", JOB, "--json").stdout)
    assert data["launch_key"] == "differs"
    assert any("Permission denied (publickey)" in note and "rescale-ssh key show" in note
               for note in data["notes"])


def test_status_says_the_keys_match_whatever_the_comment(cli: Cli, platform: FakePlatform,
                                                         mine: Path) -> None:
    platform.add_job(JOB, public_key=pub(mine, comment="rsa-key-20191205"))
    result = cli("status", JOB)
    assert f"launch key matches your key {fingerprint(mine)} ({mine})" in result.stdout
    assert "warning" not in result.stderr and "note" not in result.stderr
    assert json.loads(cli("status", JOB, "--json").stdout)["launch_key"] == "matches"


@pytest.mark.parametrize("failure", ["403", "404", "429", "no field", "null", "malformed",
                                     "no identity"])
def test_a_launch_key_that_cannot_be_told_is_unknown_and_silent(
    cli: Cli, platform: FakePlatform, isolated_home: Path, other: Path, failure: str
) -> None:
    if failure != "no identity":
        cli("key", "generate", "--no-passphrase")
    job = platform.add_job(JOB, public_key=pub(other))
    detail = rf"^/api/v2/jobs/{JOB}/$"
    if failure in ("403", "404"):  # every time it is asked
        platform.inject(detail, *[Status(int(failure))] * 10)
    elif failure == "429":  # every retry throttled too
        platform.inject(detail, *[Status(429, headers={"Retry-After": "0"})] * 30)
    elif failure == "no field":
        job.public_key_field = False
    elif failure == "null":
        job.public_key = None
    elif failure == "malformed":
        job.public_key = "ssh-ed25519 not-base64!! me@laptop"
    text = cli("status", JOB)
    assert "launch key" not in text.stdout
    assert "warning" not in text.stderr and "Job Settings" not in text.stderr, text
    assert json.loads(cli("status", JOB, "--json").stdout)["launch_key"] == "unknown"
    added = cli("add", JOB)
    assert added.stdout.startswith(f"Added rescale-{JOB}")
    assert "launched with" not in added.stderr and "submit the job again" not in added.stderr


def test_status_of_a_stopped_job_asks_no_job_detail(cli: Cli, platform: FakePlatform,
                                                    mine: Path, other: Path) -> None:
    platform.add_job(JOB, status="Completed", cluster_status="Stopped", public_key=pub(other))
    assert json.loads(cli("status", JOB, "--json").stdout)["launch_key"] == "unknown"
    assert detail_requests(platform) == 0


def test_status_times_have_a_zone_and_reasons_are_null(cli: Cli, platform: FakePlatform
                                                       ) -> None:
    """The text showed `Executing 2024-05-01 10:00:00` (which zone?) and the JSON gave the
    platform's strings as they came (cluster dates without a zone) and `"reason": ""`."""
    platform.add_job(JOB)
    data = json.loads(cli("status", JOB, "--json").stdout)
    for event in data["statuses"] + data["cluster_statuses"]:
        when = dt.datetime.fromisoformat(event["date"])
        assert when.utcoffset() == dt.timedelta(0), event
        assert event["reason"] is None or event["reason"].strip(), event
    assert any(e["reason"] is None for e in data["cluster_statuses"])
    newest = dt.datetime.fromisoformat(data["statuses"][0]["date"])
    line = next(x for x in cli("status", JOB).stdout.splitlines() if x.startswith("statuses"))
    assert f"Executing {newest:%Y-%m-%d %H:%M:%S}Z" in line
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", stamp)
               for stamp in re.findall(r"\d{4}-[^,]*Z", line))


def test_jobs_json_has_null_for_what_the_platform_did_not_give(cli: Cli,
                                                              platform: FakePlatform) -> None:
    platform.add_job("Named1")
    platform.add_job("Blank1", name="")
    rows = {row["id"]: row for row in json.loads(cli("jobs", "--json").stdout)}
    assert rows["Blank1"]["name"] is None
    assert rows["Named1"]["name"] == "Job Named1"
    assert all(value != "" for row in rows.values() for value in row.values()), rows


# -- jobs ---------------------------------------------------------------------------------------


def test_jobs_checks_keys_only_when_asked_then_remembers(cli: Cli, platform: FakePlatform,
                                                         mine: Path, other: Path) -> None:
    platform.add_job("Kdiff1", public_key=pub(other))
    platform.add_job("Ksame1", public_key=pub(mine))
    platform.add_job("Kwait1", status="Queued", cluster_status="Not Started",
                     public_key=pub(other))
    cli("jobs")  # users/me, once a day
    platform.requests.clear()
    plain = cli("jobs", "--json")
    assert detail_requests(platform) == 0  # no extra request per job by default
    assert {row["id"]: row["launch_key"] for row in json.loads(plain.stdout)} == {
        "Kdiff1": "unknown", "Ksame1": "unknown", "Kwait1": "unknown"}
    before = platform.count()
    checked = cli("jobs", "--check-keys")
    assert detail_requests(platform) == 2  # the ready jobs only
    assert platform.count() - before == 1 + 1 + 2 + 2  # list, look-back, instances, details
    assert warnings(checked.stderr) == [
        f"rescale-ssh: warning: job Kdiff1's cluster was launched with key "
        f"{fingerprint(other)}, not your key {fingerprint(mine)} ({mine}): ssh to it fails "
        "with 'Permission denied (publickey)'"]
    assert "hint: paste your public key (`rescale-ssh key show`)" in checked.stderr
    platform.requests.clear()
    again = cli("jobs", "--json")  # what was learned costs nothing
    assert detail_requests(platform) == 0
    assert {row["id"]: row["launch_key"] for row in json.loads(again.stdout)} == {
        "Kdiff1": "differs", "Ksame1": "matches", "Kwait1": "unknown"}
    assert warnings(cli("jobs").stderr)[0].startswith(
        "rescale-ssh: warning: job Kdiff1's cluster")
    platform.requests.clear()
    cli("jobs", "--check-keys")
    assert detail_requests(platform) == 0  # remembered: not asked again


# -- add and sync -------------------------------------------------------------------------------


def test_add_warns_and_still_writes_the_block(cli: Cli, platform: FakePlatform, mine: Path,
                                              other: Path, ssh_config: Path) -> None:
    platform.add_job(JOB, public_key=pub(other))
    result = cli("add", JOB)
    assert result.stdout.startswith(f"Added rescale-{JOB}")
    assert f"Host rescale-{JOB}" in ssh_config.read_text()
    assert warnings(result.stderr) == [
        f"rescale-ssh: warning: job {JOB}'s cluster was launched with key {fingerprint(other)}"
        f", not your key {fingerprint(mine)} ({mine}): ssh to it fails with 'Permission "
        "denied (publickey)'"]
    assert "submit the job again" in result.stderr
    # instances + logs + the job detail (its publicKey): 3 the first time ...
    assert platform.count() == 3
    platform.requests.clear()
    again = cli("add", JOB)
    assert platform.count() == 2  # ... then remembered: a running cluster keeps its key
    assert warnings(again.stderr)
    # The user fixes their identity: no warning, nothing asked.
    platform.requests.clear()
    fixed = cli("add", JOB, "--identity", str(other))
    assert not warnings(fixed.stderr) and detail_requests(platform) == 0
    # What was learned goes with uninstall: no file of ours is left, nor the state folder
    # (the walkthrough of issue 15 found launchkeys left behind).
    from rescale_ssh.platform import launchkey
    from rescale_ssh.sshconfig import install

    assert launchkey.FILE in install.TOOL_FILES
    state = mine.parent.parent / ".local" / "state" / "rescale-ssh"
    assert (state / launchkey.FILE).exists()
    cli("uninstall", "--yes")
    assert not state.exists()


def test_without_a_key_of_yours_nothing_is_asked(cli: Cli, platform: FakePlatform,
                                                 other: Path) -> None:
    """No key at the identity path: nothing to compare, so no job detail (the missing-key
    warning says what to do)."""
    platform.add_job(JOB, public_key=pub(other))
    platform.add_job("Nokey2", public_key=pub(other))
    added = cli("add", JOB)
    assert platform.count() == 2 and "does not exist" in added.stderr
    assert "launched with" not in added.stderr
    platform.requests.clear()
    cli("sync")
    cli("jobs", "--check-keys")
    assert detail_requests(platform) == 0


def test_add_of_a_matching_key_says_nothing(cli: Cli, platform: FakePlatform,
                                           mine: Path) -> None:
    platform.add_job(JOB, public_key=pub(mine))
    assert cli("add", JOB).stderr == ""


def test_sync_warns_for_the_jobs_it_adds_only(cli: Cli, platform: FakePlatform, mine: Path,
                                              other: Path) -> None:
    platform.add_job("Sdiff1", public_key=pub(other))
    platform.add_job("Ssame1", public_key=pub(mine))
    result = cli("sync")
    assert sorted(result.stdout.split()) == sorted(
        ["Added", "rescale-Sdiff1", "Added", "rescale-Ssame1"])
    assert [w.split("'s cluster")[0] for w in warnings(result.stderr)] == [
        "rescale-ssh: warning: job Sdiff1"]
    assert detail_requests(platform) == 2
    platform.requests.clear()
    platform.add_job("Snew1", public_key=pub(other))
    second = cli("sync")
    assert second.stdout.strip() == "Added rescale-Snew1"
    assert detail_requests(platform) == 1  # only the job this sync added
    assert detail_requests(platform, "Snew1") == 1
    assert [w.split("'s cluster")[0] for w in warnings(second.stderr)] == [
        "rescale-ssh: warning: job Snew1"]


def test_sync_checks_at_most_a_few_jobs_a_run(cli: Cli, platform: FakePlatform, mine: Path,
                                              other: Path) -> None:
    from rescale_ssh.sshconfig.sync import KEY_CHECKS

    for i in range(KEY_CHECKS + 2):
        platform.add_job(f"Many{i:02d}", public_key=pub(other), host=f"203.0.113.{i + 1}")
    result = cli("sync")
    assert detail_requests(platform) == KEY_CHECKS
    assert len(warnings(result.stderr)) == KEY_CHECKS
    assert "note: the launch keys of 2 more added jobs were not checked" in result.stderr


def test_sync_dry_run_remembers_nothing(cli: Cli, platform: FakePlatform, mine: Path,
                                        other: Path, isolated_home: Path) -> None:
    platform.add_job(JOB, public_key=pub(other))
    assert warnings(cli("sync", "--dry-run").stderr)
    assert not (isolated_home / ".local/state/rescale-ssh/launchkeys").exists()


# -- shell and code -----------------------------------------------------------------------------


@pytest.mark.e2e
def test_shell_warns_and_points_to_doctor_when_ssh_is_refused(
    cli: Cli, platform: FakePlatform, sshd: SSHServer, mine: Path
) -> None:
    """The cluster (a real sshd) accepts only the key it was launched with; the user's is
    another: ssh says only 'Permission denied (publickey)' and exits 255."""
    workdir = sshd.new_workdir("Shkey1")
    platform.add_job("Shkey1", user=sshd.user, host=sshd.host, port=sshd.port,
                     workdir=str(workdir), public_key=pub(sshd.client_key))
    result = cli("shell", "Shkey1", "-o", "BatchMode=yes", input="pwd\n", expect=255)
    assert "Permission denied" in result.stderr
    said = warnings(result.stderr)
    assert said[0].startswith("rescale-ssh: warning: added rescale-Shkey1")
    assert said[1].startswith(f"rescale-ssh: warning: job Shkey1's cluster was launched with "
                              f"key {fingerprint(sshd.client_key)}, not your key")
    assert said[-1] == ("rescale-ssh: warning: ssh could not connect to rescale-Shkey1 or log "
                        "in, or lost the connection (exit 255): `rescale-ssh doctor Shkey1` "
                        "says why")
    # With the cluster's key in the block: no warning, the shell works.
    cli("add", "Shkey1", "--identity", str(sshd.client_key))
    ok = cli("shell", "Shkey1", "-o", "BatchMode=yes", input="pwd\n")
    assert ok.stdout.strip().splitlines()[-1] == str(workdir)
    assert "doctor" not in ok.stderr and "Job Settings" not in ok.stderr


def fake_code(folder: Path) -> dict[str, str]:
    folder.mkdir(exist_ok=True)
    program = folder / "code"
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    return {"PATH": f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"}


def test_code_warns_from_what_is_known(cli: Cli, platform: FakePlatform, mine: Path,
                                       other: Path, tmp_path: Path) -> None:
    env = fake_code(tmp_path / "bin")
    platform.add_job(JOB, public_key=pub(other))
    platform.add_job("Csame1", public_key=pub(mine))
    cli("add", JOB)
    cli("add", "Csame1")
    platform.requests.clear()
    result = cli("code", JOB, env=env)
    assert warnings(result.stderr)[0].startswith(
        f"rescale-ssh: warning: job {JOB}'s cluster was launched with key")
    assert "rescale-ssh key show" in result.stderr
    assert result.stdout.startswith("Opening vscode-remote://")
    assert cli("code", "Csame1", env=env).stderr == ""
    assert platform.count() == 0  # VS Code's ssh connects: code itself asks nothing


def test_code_says_nothing_when_nothing_is_known(cli: Cli, platform: FakePlatform,
                                                 mine: Path, tmp_path: Path) -> None:
    env = fake_code(tmp_path / "bin")
    cli("add", JOB, "--from-log", "Command: ssh uprod_Kdiff1@192.0.2.1")
    assert cli("code", JOB, env=env).stderr == ""
    assert platform.count() == 0
