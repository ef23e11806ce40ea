"""`shell JOB [SSH-OPTIONS...] [-- COMMAND [ARGS...]]` against a real sshd: ssh options before
`--`, the words after it run as the remote command in the working directory, each word as it
was given."""

from __future__ import annotations

from pathlib import Path

import pytest

from rescale_ssh.cli import shell
from rescale_ssh.errors import UsageError
from tests.fakeplatform import FakePlatform
from tests.helpers import Cli
from tests.sshd import SSHServer


def running_at(platform: FakePlatform, sshd: SSHServer, job: str) -> Path:
    workdir = sshd.new_workdir(job)
    platform.add_job(job, user=sshd.user, host=sshd.host, port=sshd.port, workdir=str(workdir))
    return workdir


@pytest.mark.e2e
def test_words_after_dashes_run_in_the_working_directory(
    cli: Cli, platform: FakePlatform, sshd: SSHServer
) -> None:
    workdir = running_at(platform, sshd, "Cmd1")
    env = {"RESCALE_SSH_IDENTITY": str(sshd.client_key)}
    result = cli("shell", "Cmd1", "-o", "BatchMode=yes", "--", "pwd", env=env)
    assert result.stdout.strip() == str(workdir)  # the command ran, not a shell reading stdin
    # Each word arrives as given: spaces, quotes, $ and * are not the remote shell's.
    odd = ["a  b", "it's", "$HOME", "*", "x;y", ""]
    printed = cli("shell", "Cmd1", "-oBatchMode=yes", "--", "printf", "[%s]\\n", *odd, env=env)
    assert printed.stdout.splitlines() == [f"[{word}]" for word in odd]
    # The exit status is the command's; a shell's syntax runs through sh -c.
    cli("shell", "Cmd1", "-o", "BatchMode=yes", "--", "sh", "-c", "exit 7", env=env, expect=7)
    piped = cli("shell", "Cmd1", "-o", "BatchMode=yes", "--", "sh", "-c", "echo one two | wc -w",
                env=env)
    assert piped.stdout.strip() == "2"


@pytest.mark.e2e
def test_ssh_options_before_dashes_reach_ssh(
    cli: Cli, platform: FakePlatform, sshd: SSHServer
) -> None:
    running_at(platform, sshd, "Opt1")
    env = {"RESCALE_SSH_IDENTITY": str(sshd.client_key)}
    # -v is ssh's: its debug lines show on stderr; the command still runs.
    result = cli("shell", "Opt1", "-v", "-o", "BatchMode=yes", "--", "true", env=env)
    assert "debug1:" in result.stderr
    # -oBatchMode=yes holds an h: Click read it as -h (help) before.
    quiet = cli("shell", "Opt1", "-oBatchMode=yes", "--", "echo", "ok", env=env)
    assert quiet.stdout == "ok\n"


def test_a_command_before_dashes_or_an_option_after_them_is_refused(cli: Cli) -> None:
    cli("add", "Fotxeb", "--from-log", "Command: ssh uprod_Fotxeb@192.0.2.1")
    before = cli("shell", "Fotxeb", "ls", "-l", expect=2)
    assert before.stderr == ("rescale-ssh: error: 'ls' is not an ssh option: only ssh options "
                             "may come before `--`\nhint: put the remote command after `--`: "
                             "rescale-ssh shell Fotxeb -- ls -l\n")
    after = cli("shell", "Fotxeb", "--", "-L", "8888:localhost:8888", expect=2)
    assert after.stderr.splitlines()[1] == "hint: rescale-ssh shell Fotxeb -L " \
        "8888:localhost:8888"


def test_remote_command_quotes_each_word() -> None:
    assert shell.remote_command("/enc/u/work") == 'cd /enc/u/work && exec "${SHELL:-/bin/sh}" -l'
    assert shell.remote_command("/enc/u/work", ["echo", "a b", "$X"]) == \
        "cd /enc/u/work && echo 'a b' '$X'"


def test_split_words_keeps_ssh_options_and_their_values() -> None:
    flags = {"--wait", "-h", "--help"}
    with_value = {"--timeout", "--ssh"}
    ours, ssh, job = shell.split_words(
        ["Job1", "-L", "8:l:8", "--timeout", "5", "-v", "-p2222", "--wait", "-o", "A=b"],
        flags=flags, with_value=with_value)
    assert ours == ["Job1", "--timeout", "5", "--wait"] and job == "Job1"
    assert ssh == ["-L", "8:l:8", "-v", "-p2222", "-o", "A=b"]
    with pytest.raises(UsageError):
        shell.split_words(["Job1", "-v", "stray"], flags=flags, with_value=with_value)
