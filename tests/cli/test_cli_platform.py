"""The real command line against the fake platform: add, exit codes, messages, the API key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.fakeplatform import FakePlatform, Fault, Malformed, Status
from tests.helpers import Cli, Result, ssh_config_of

WRONG_KEY = "wrong-key-9876543210fedcba"


def clean(result: Result, *secrets: str) -> Result:
    """No traceback, no secret: what every run without --debug must look like."""
    assert "Traceback" not in result.stderr, result
    for secret in secrets:
        assert secret not in result.stdout + result.stderr, result
    return result


def write_profiles(home: Path, sections: dict[str, dict[str, str]]) -> Path:
    path = home / ".config" / "rescale" / "apiconfig"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(
        f"[{name}]\n" + "".join(f"{key} = {value}\n" for key, value in values.items()) + "\n"
        for name, values in sections.items()
    )
    path.write_text(text)
    return path


def test_add_writes_the_block(cli: Cli, platform: FakePlatform, ssh_config: Path) -> None:
    platform.add_job("Fotxeb", port=2222, workers=2, workdir="/enc/uprod_Fotxeb/work/shared")
    result = clean(cli("add", "Fotxeb"), platform.api_key)
    assert result.stdout.startswith(
        f"Added rescale-Fotxeb → uprod_Fotxeb@203.0.113.7 port 2222 in {ssh_config}\n"
    )
    assert platform.count() == 2

    lines = ssh_config.read_text().splitlines()
    assert "Host rescale-Fotxeb" in lines
    block = [line.strip() for line in lines]
    assert "# rescale-ssh job=Fotxeb workdir=/enc/uprod_Fotxeb/work/shared" in block
    assert "HostName 203.0.113.7" in block
    assert "Port 2222" in block
    assert "User uprod_Fotxeb" in block
    options = ssh_config_of(str(ssh_config), "rescale-Fotxeb")
    assert (options["hostname"], options["port"], options["user"]) == (
        ["203.0.113.7"], ["2222"], ["uprod_Fotxeb"]
    )

    listed = json.loads(clean(cli("list", "--json")).stdout)
    assert [(e["job"], e["host"], e["port"], e["workdir"]) for e in listed] == [
        ("Fotxeb", "203.0.113.7", 2222, "/enc/uprod_Fotxeb/work/shared")
    ]
    assert clean(cli("path", "Fotxeb")).stdout == "rescale-Fotxeb:/enc/uprod_Fotxeb/work/shared\n"

    # Running it again after the cluster moved refreshes the block.
    platform.remove_job("Fotxeb")
    platform.add_job("Fotxeb", host="198.51.100.5")
    again = clean(cli("add", "Fotxeb"))
    assert again.stdout.startswith("Updated rescale-Fotxeb → uprod_Fotxeb@198.51.100.5 port 22")
    assert "HostName 198.51.100.5" in ssh_config.read_text()


def test_dry_run_writes_nothing(cli: Cli, platform: FakePlatform, ssh_config: Path) -> None:
    platform.add_job("Fotxeb")
    result = clean(cli("add", "Fotxeb", "--dry-run"))
    assert "+    HostName 203.0.113.7" in result.stdout
    assert not ssh_config.exists()


def test_queued_job_exits_7_with_two_lines(cli: Cli, platform: FakePlatform, ssh_config: Path
                                           ) -> None:
    platform.add_job("Waits", status="Queued", cluster_status="Not Started")
    result = clean(cli("add", "Waits", expect=7), platform.api_key)
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result
    assert lines[0].startswith("rescale-ssh: error: job Waits is Queued"), result
    assert lines[1].startswith("hint:"), result
    assert result.stdout == ""
    assert not ssh_config.exists()


def test_stopped_job_exits_7(cli: Cli, platform: FakePlatform) -> None:
    platform.add_job("Done", status="Completed", cluster_status="Stopped")
    result = clean(cli("add", "Done", expect=7))
    assert "stopped" in result.stderr.splitlines()[0]


def test_bad_key_exits_4_with_the_login_hint(cli: Cli, platform: FakePlatform,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    platform.add_job("Fotxeb")
    monkeypatch.setenv("RESCALE_API_KEY", WRONG_KEY)
    result = clean(cli("add", "Fotxeb", expect=4), WRONG_KEY, platform.api_key)
    lines = result.stderr.splitlines()
    # Issue 15: with RESCALE_API_KEY set, `login` cannot help; the message names the source.
    assert lines[0] == "rescale-ssh: error: the platform rejected the API key from " \
        "RESCALE_API_KEY"
    assert lines[1].startswith("hint: RESCALE_API_KEY wins over any stored key")
    assert "`rescale-ssh login` cannot help while it is set" in lines[1]
    # The instances and the logs are asked for at once (issue 16): each once, not retried.
    paths = [r.path for r in platform.requests]
    assert len(paths) == len(set(paths)) <= 2, "a rejected key is not retried"


def test_forbidden_job_exits_4(cli: Cli, platform: FakePlatform) -> None:
    platform.add_job("Theirs").forbidden = True
    clean(cli("add", "Theirs", expect=4), platform.api_key)


def test_unknown_job_exits_5(cli: Cli, platform: FakePlatform, ssh_config: Path) -> None:
    result = clean(cli("add", "Nope", expect=5), platform.api_key)
    assert result.stderr.startswith(
        f"rescale-ssh: error: job Nope not found on {platform.base_url}\nhint: "
    )
    assert not ssh_config.exists()


@pytest.mark.parametrize(
    "fault", [Status(500, {"detail": "Server Error"}), Malformed()], ids=["500", "malformed"]
)
def test_platform_trouble_exits_6(cli: Cli, platform: FakePlatform, fault: Fault) -> None:
    platform.add_job("Fotxeb")
    platform.inject("/instances/", fault)
    result = clean(cli("add", "Fotxeb", expect=6), platform.api_key)
    assert len(result.stderr.splitlines()) == 2


@pytest.mark.parametrize(
    ("job", "field"),
    [
        ({"user": "root\nProxyCommand x"}, "user name"),
        ({"host": "1.2.3.4 -oProxyCommand=x"}, "host"),
        ({"host": "ехаmple.com"}, "host"),
        ({"port": 0}, "port"),
        ({"workdir": "/enc/x/work$(id)"}, "working directory"),
    ],
    ids=["user", "host", "lookalike", "port", "workdir"],
)
def test_hostile_platform_value_exits_8_and_writes_nothing(
    cli: Cli, platform: FakePlatform, ssh_config: Path, job: dict[str, Any], field: str
) -> None:
    platform.add_job("Good")
    clean(cli("add", "Good"))
    before = ssh_config.read_bytes()
    platform.add_job("Evil", **job)
    result = clean(cli("add", "Evil", expect=8), platform.api_key)
    assert result.stderr.startswith(f"rescale-ssh: error: invalid {field} from the platform")
    assert len(result.stderr.splitlines()) <= 2
    assert ssh_config.read_bytes() == before


def test_debug_shows_requests_and_tracebacks_but_never_the_key(
    cli: Cli, platform: FakePlatform
) -> None:
    platform.add_job("Fotxeb")
    platform.add_job("Waits", status="Queued", cluster_status="Not Started")
    ok = clean(cli("--debug", "add", "Fotxeb"), platform.api_key)
    assert "/api/v2/jobs/Fotxeb/instances/" in ok.stderr
    for job, code in (("Waits", 7), ("Nope", 5)):
        failed = cli("add", job, "--debug", expect=code)
        assert "Traceback" in failed.stderr
        assert platform.api_key not in failed.stdout + failed.stderr
    assert all(r.authorization == f"Token {platform.api_key}" for r in platform.requests)


def test_key_from_the_rescale_cli_profile(cli: Cli, platform: FakePlatform, isolated_home: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RESCALE_API_KEY")
    monkeypatch.delenv("RESCALE_API_URL")
    write_profiles(isolated_home, {
        "prod": {"apikey": platform.api_key, "apibaseurl": platform.base_url},
    })
    platform.add_job("Fotxeb")
    clean(cli("add", "Fotxeb"), platform.api_key)
    assert platform.requests[0].authorization == f"Token {platform.api_key}"


def test_profile_is_chosen_by_flag_or_env(cli: Cli, platform: FakePlatform, isolated_home: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RESCALE_API_KEY")
    monkeypatch.delenv("RESCALE_API_URL")
    write_profiles(isolated_home, {
        "prod": {"apikey": WRONG_KEY, "apibaseurl": platform.base_url},
        "staging": {"apikey": platform.api_key, "apibaseurl": platform.base_url},
    })
    platform.add_job("Fotxeb")
    secrets = (platform.api_key, WRONG_KEY)
    clean(cli("add", "Fotxeb", expect=4), *secrets)  # the first section: prod
    clean(cli("add", "Fotxeb", "--profile", "staging"), *secrets)
    clean(cli("add", "Fotxeb", env={"RESCALE_PROFILE": "staging"}), *secrets)
    missing = clean(cli("--profile", "nosuch", "add", "Fotxeb", expect=2), *secrets)
    assert "profile 'nosuch'" in missing.stderr
    assert [r.authorization for r in platform.requests if r.path.endswith("/instances/")] == [
        f"Token {WRONG_KEY}", f"Token {platform.api_key}", f"Token {platform.api_key}"
    ]


def test_environment_key_wins_over_the_profile(cli: Cli, platform: FakePlatform,
                                               isolated_home: Path) -> None:
    write_profiles(isolated_home, {"prod": {"apikey": WRONG_KEY}})
    platform.add_job("Fotxeb")
    clean(cli("add", "Fotxeb"), WRONG_KEY)


@pytest.mark.parametrize("suffix", ["/api/v3/", "/api/v2", "/"])
def test_api_url_as_a_full_api_url(cli: Cli, platform: FakePlatform,
                                   monkeypatch: pytest.MonkeyPatch, suffix: str) -> None:
    monkeypatch.setenv("RESCALE_API_URL", platform.base_url + suffix)
    platform.add_job("Fotxeb")
    clean(cli("add", "Fotxeb"))
    assert sorted(r.path for r in platform.requests) == [  # asked for at once
        "/api/v2/jobs/Fotxeb/instances/", "/api/v3/jobs/Fotxeb/logs/"
    ]
