"""The command line explains itself: usage errors in the boundary's two-line format (not
Click's usage block), global options in every command's help, plain placeholders and defaults,
and a --debug log with one line a request."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.fakeplatform import FakePlatform
from tests.helpers import Cli

LINE = "Command: ssh uprod_Fotxeb@192.0.2.1; working directory: /enc/uprod_Fotxeb/work"


@pytest.mark.parametrize(
    ("args", "error", "hint"),
    [
        (("add", "Fotxeb", "--bogus"), "no such option: --bogus",
         "run 'rescale-ssh add --help'"),
        (("add", "Fotxeb", "--dry-rn"), "no such option: --dry-rn",
         "did you mean --dry-run? run 'rescale-ssh add --help'"),
        (("add",), "missing argument 'JOB'", "run 'rescale-ssh add --help'"),
        (("wait", "Fotxeb", "--timeout", "soon"),
         "invalid value for '--timeout': 'soon' is not a valid float",
         "run 'rescale-ssh wait --help'"),
        (("wait", "Fotxeb", "--timeout", "-5"), "invalid value for '--timeout': -5 is not at "
         "least 0", "run 'rescale-ssh wait --help'"),
        (("install", "--timeout", "500"), "invalid value for '--timeout': 500 is not from 1 to "
         "120", "run 'rescale-ssh install --help'"),
        (("frobnicate",), "no such command 'frobnicate'", "run 'rescale-ssh --help'"),
        (("ad", "Fotxeb"), "no such command 'ad'", "did you mean 'add'? run 'rescale-ssh --help'"),
        (("key", "generat"), "no such command 'generat'",
         "did you mean 'generate'? run 'rescale-ssh key --help'"),
        (("--ssh-config",), "option '--ssh-config' requires an argument",
         "run 'rescale-ssh --help'"),
        (("shell", "Fotxeb", "--timout", "3"), "no such option: --timout",
         "did you mean --timeout? run 'rescale-ssh shell --help'"),
    ],
)
def test_usage_errors_are_our_two_lines_and_exit_2(
    cli: Cli, args: tuple[str, ...], error: str, hint: str
) -> None:
    result = cli(*args, expect=2)
    assert result.stderr == f"rescale-ssh: error: {error}\nhint: {hint}\n", result
    assert result.stdout == ""


def test_help_version_and_bare_command_still_work(cli: Cli) -> None:
    assert cli("add", "--help").stdout.startswith("Usage: rescale-ssh add [OPTIONS] JOB\n")
    assert cli("--version").stdout.startswith("rescale-ssh ")
    bare = cli(expect=2)  # no command: the help, as before
    assert "Commands:" in bare.stdout + bare.stderr
    assert cli("hook", "--help").stdout.startswith("Usage: rescale-ssh hook")


GLOBALS = ("--ssh-config PATH", "--platform URL-or-region", "--profile NAME", "--identity PATH",
           "--debug")


@pytest.mark.parametrize("command", [("add",), ("path",), ("shell",), ("key", "generate"),
                                     ("jobs",), ("doctor",)])
def test_every_command_help_shows_the_global_options(cli: Cli, command: tuple[str, ...]
                                                      ) -> None:
    out = cli(*command, "--help").stdout
    _, found, section = out.partition("Global options (before or after the command):\n")
    assert found, out
    for option in GLOBALS:
        assert re.search(rf"^  {re.escape(option)}\b", section, re.MULTILINE), (option, out)
    assert "--version" not in section


def every_help(cli: Cli) -> list[str]:
    """The help of every visible command and group, nested ones too."""
    import typer

    from rescale_ssh.cli.app import app

    found: list[str] = []

    def walk(command: object, path: list[str]) -> None:
        found.append(cli(*path, "--help").stdout)
        for name, sub in getattr(command, "commands", {}).items():
            if not getattr(sub, "hidden", False):
                walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return found


def test_help_reads_plainly(cli: Cli) -> None:
    """Placeholders are JOB, SUBPATH, SECONDS (not Typer's {job}); defaults are numbers
    without Click's range noise (1800.0; x>=0)."""
    texts = {c: cli(c, "--help").stdout for c in ("add", "path", "wait", "shell", "install",
                                                   "status", "remove")}
    everything = "\n".join([*texts.values(), *every_help(cli)])
    assert "{" not in everything and "x>=" not in everything and "<=x" not in everything
    assert ".0]" not in everything and ".0;" not in everything
    assert texts["path"].startswith("Usage: rescale-ssh path [OPTIONS] JOB [SUBPATH]\n")
    assert texts["status"].startswith("Usage: rescale-ssh status [OPTIONS] JOB\n")
    assert "\n  JOB  " in texts["add"]
    assert texts["shell"].startswith(
        "Usage: rescale-ssh shell [OPTIONS] JOB [SSH-OPTIONS]... [-- COMMAND [ARGS]...]\n")
    flat = " ".join(texts["wait"].split())
    assert "--timeout SECONDS Give up after this many seconds. [default: 1800]" in flat
    install = " ".join(texts["install"].split())
    assert "(1 to 120). [default: 10]" in install and "(0 to 3600). [default: 0]" in install


def test_debug_logs_each_request_once(cli: Cli, platform: FakePlatform) -> None:
    platform.add_job("Fotxeb")
    for args in (("--debug", "add", "Fotxeb"), ("status", "Fotxeb", "--debug")):
        platform.requests.clear()
        result = cli(*args)
        logged = [line for line in result.stderr.splitlines()  # a request's line: "GET ... ->"
                  if line.startswith("rescale-ssh: debug: GET ") and " -> " in line]
        assert len(logged) == len(platform.requests) > 0, result
        for request in platform.requests:
            assert sum(request.path in line for line in logged) == sum(
                r.path == request.path for r in platform.requests), (request.path, logged)
        assert platform.api_key not in result.stderr


def test_debug_from_the_environment_logs_requests_too(cli: Cli, platform: FakePlatform) -> None:
    platform.add_job("Fotxeb")
    result = cli("add", "Fotxeb", env={"RESCALE_SSH_DEBUG": "1"})
    assert "rescale-ssh: debug: GET " in result.stderr


def test_add_from_log_help_names_force(cli: Cli) -> None:
    assert "--force" in cli("add", "--help").stdout
    cli("add", "Fotxeb", "--from-log", LINE)


def test_typers_completion_installer_is_not_offered(cli: Cli) -> None:
    """It writes ~/.bashrc lines that uninstall cannot undo (after `pipx uninstall`, every Tab
    in bash printed an error); `install` links the shipped scripts instead."""
    out = cli("--help").stdout
    assert "--install-completion" not in out and "--show-completion" not in out


def test_an_invalid_job_id_says_what_a_job_id_is(cli: Cli) -> None:
    """Every error has a hint (README); a refused job ID had none (issue 15's walk)."""
    result = cli("add", "Fo-txeb", expect=2)
    lines = result.stderr.splitlines()
    assert lines[0] == ("rescale-ssh: error: invalid job ID from the command line: 'Fo-txeb' "
                        "(letters and digits only)")
    assert lines[1].startswith("hint: a job ID is the letters and digits after /jobs/")


def test_add_dry_run_says_nothing_was_written(cli: Cli, ssh_config: Path) -> None:
    result = cli("add", "Fotxeb", "--dry-run", "--from-log",
                 "Command: ssh uprod_Fotxeb@203.0.113.7")
    assert result.stdout.startswith("---") or "+Host rescale-Fotxeb" in result.stdout
    assert "Dry run: nothing was written" in result.stderr
    assert not ssh_config.exists()


def test_end_of_input_at_a_prompt_is_not_an_interruption(cli: Cli) -> None:
    """Ctrl-D at `key generate`'s passphrase prompt said 'interrupted', exit 130 (issue 15's
    walk): it is an answer that did not come, said so, exit 2, and no key is written."""
    from tests.terminal import run_in_terminal

    session = run_in_terminal(["key", "generate"], [("Passphrase", "\x04")])
    assert session.returncode == 2, session.output
    assert "rescale-ssh: error: end of input at a prompt: nothing was changed" in session.output
    assert "interrupted" not in session.output
    home = Path(os.environ["HOME"])
    assert not (home / ".ssh" / "rescale_ed25519").exists()
