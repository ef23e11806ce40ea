"""The command line without a platform: exit codes, messages, list/path/remove, stdin."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import Cli

LINE = (
    "Instance ready for ssh access. Command: ssh -i </path/to/key> uprod_Fotxeb@203.0.113.7; "
    "working directory: /enc/uprod_Fotxeb/work"
)


def test_add_list_path_remove(cli: Cli, ssh_config: Path) -> None:
    added = cli("add", "Fotxeb", "--from-log", LINE)
    assert added.stdout.startswith("Added rescale-Fotxeb → uprod_Fotxeb@203.0.113.7 port 22")
    assert "does not exist" in added.stderr  # the default identity was not generated yet
    again = cli("add", "Fotxeb", "--from-log", LINE)
    assert again.stdout.startswith("Unchanged rescale-Fotxeb")
    moved = cli("add", "Fotxeb", "--from-log", LINE.replace("203.0.113.7", "198.51.100.4"))
    assert moved.stdout.startswith("Updated rescale-Fotxeb → uprod_Fotxeb@198.51.100.4")

    listed = json.loads(cli("list", "--json").stdout)
    assert listed == [
        {
            "job": "Fotxeb",
            "alias": "rescale-Fotxeb",
            "user": "uprod_Fotxeb",
            "host": "198.51.100.4",
            "port": 22,
            "workdir": "/enc/uprod_Fotxeb/work",
            "identity": str(Path.home() / ".ssh" / "rescale_ed25519"),
            "known_hosts": str(Path.home() / ".local/state/rescale-ssh/known_hosts"),
        }
    ]
    table = cli("list").stdout.splitlines()
    assert table[0].split() == ["ALIAS", "USER@HOST", "PORT", "WORKING", "DIRECTORY"]
    assert table[1].split() == ["rescale-Fotxeb", "uprod_Fotxeb@198.51.100.4", "22",
                                "/enc/uprod_Fotxeb/work"]

    assert cli("path", "Fotxeb").stdout == "rescale-Fotxeb:/enc/uprod_Fotxeb/work\n"
    assert cli("path", "Fotxeb", "results/run1").stdout == (
        "rescale-Fotxeb:/enc/uprod_Fotxeb/work/results/run1\n"
    )
    assert cli("remove", "--yes", "Fotxeb").stdout.startswith("Removed rescale-Fotxeb")
    assert "nothing to remove" in cli("remove", "--yes", "Fotxeb").stdout
    assert ssh_config.read_bytes() == b""
    assert cli("list", "--json").stdout.strip() == "[]"


def test_from_log_stdin_whole_log(cli: Cli, ssh_config: Path) -> None:
    log = f"Job submitted\nCluster starting\n{LINE}\nRunning\nCompleted maybe\n"
    cli("add", "Fotxeb", "--from-log", "-", input=log)
    assert b"HostName 203.0.113.7" in ssh_config.read_bytes()


def test_global_options_anywhere_and_env(cli: Cli, tmp_path: Path) -> None:
    other = tmp_path / "other_config"
    cli("add", "Fotxeb", "--from-log", LINE, "--ssh-config", str(other), "--identity", "/k/id")
    assert b"IdentityFile /k/id" in other.read_bytes()
    cli("--ssh-config", str(other), "remove", "--yes", "Fotxeb")
    assert other.read_bytes() == b""
    cli("add", "Fotxeb", "--from-log", LINE, env={"RESCALE_SSH_CONFIG": str(other),
                                                  "RESCALE_SSH_IDENTITY": "/env/key"})
    assert b"IdentityFile /env/key" in other.read_bytes()
    # The flag wins over the environment.
    cli("add", "Fotxeb", "--from-log", LINE, "--identity", "/flag/key",
        env={"RESCALE_SSH_CONFIG": str(other), "RESCALE_SSH_IDENTITY": "/env/key"})
    assert b"IdentityFile /flag/key" in other.read_bytes()


@pytest.mark.parametrize(
    ("args", "code", "first_line"),
    [
        (("add", "bad-id", "--from-log", LINE), 2,
         "rescale-ssh: error: invalid job ID from the command line: 'bad-id'"),
        (("add", "Fotxeb", "--from-log", "nothing useful"), 8,
         "rescale-ssh: error: invalid log text from --from-log: 'nothing useful' (no 'Instance "
         "ready for ssh access. Command: ssh ...' line in it)"),
        (("add", "Fotxeb", "--from-log", LINE.replace("uprod_Fotxeb@", "u`id`@")), 8,
         "rescale-ssh: error: invalid user name from --from-log: 'u`id`'"),
        (("add", "Fotxeb", "--from-log", LINE.replace("/work", "/work%h")), 8,
         "rescale-ssh: error: invalid working directory from --from-log"),
        (("add", "Fotxeb"), 4, "rescale-ssh: error: no Rescale API key"),
        (("path", "Nothere"), 5, "rescale-ssh: error: no host for job Nothere in "),
        (("--platform", "ftp://x", "add", "Fotxeb"), 2, "rescale-ssh: error: invalid platform"),
        (("add", "Fotxeb", "--identity", '/k/"q"', "--from-log", LINE), 2,
         "rescale-ssh: error: invalid identity file from --identity: '/k/\"q\"'"),
    ],
)
def test_errors_are_one_line_plus_hint(
    cli: Cli, ssh_config: Path, args: tuple[str, ...], code: int, first_line: str
) -> None:
    result = cli(*args, expect=code)
    lines = result.stderr.splitlines()
    assert lines[0].startswith(first_line), result
    assert len(lines) <= 2
    assert all(line.startswith("hint: ") for line in lines[1:])
    assert "Traceback" not in result.stderr
    assert not ssh_config.exists()


def test_debug_shows_traceback(cli: Cli) -> None:
    result = cli("--debug", "add", "bad-id", "--from-log", LINE, expect=2)
    assert "Traceback" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("hint:") or "error:" in result.stderr


def test_usage_errors_exit_2(cli: Cli) -> None:
    assert cli("add", expect=2).stderr
    assert cli("no-such-command", expect=2).stderr
    assert "Usage" in cli(expect=2).stdout + cli(expect=2).stderr


def test_version_and_help(cli: Cli) -> None:
    assert cli("--version").stdout.startswith("rescale-ssh ")
    for command in ("add", "remove", "list", "path"):
        out = cli(command, "--help").stdout
        assert "Example:" in out, command


def test_internal_commands_are_hidden_and_answer_help(cli: Cli) -> None:
    """Issue 15: `hook` and `proxy` were listed in the top-level help, and `hook --help`
    failed (`invalid job ID ... '--help'`)."""
    listed = cli("--help").stdout
    assert not [line for line in listed.splitlines()
                if line.strip().split(" ")[0] in ("hook", "proxy")]
    for command in ("hook", "proxy"):
        for flag in ("--help", "-h"):
            result = cli(command, flag)
            assert result.stdout.startswith(f"Usage: rescale-ssh {command}"), result
            assert result.stderr == ""
