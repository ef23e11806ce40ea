"""``shell JOB [SSH-OPTIONS...] [-- COMMAND [ARGS...]]``: an interactive login shell in the
job's working directory, or a command run there."""

from __future__ import annotations

import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rescale_ssh import posix
from rescale_ssh.errors import NotFoundError, ProgramError, RescaleSSHError, UsageError
from rescale_ssh.settings import Settings
from rescale_ssh.sshconfig import hosts

# ssh(1) SYNOPSIS: the options that take a value (the next word, or the rest of this one).
SSH_OPTIONS_WITH_VALUE = frozenset("BbcDEeFIiJLlmOoPpQRSWw")


def split_words(words: list[str], *, flags: set[str], with_value: set[str]
                ) -> tuple[list[str], list[str], str | None]:
    """The words before ``--``: (``shell``'s own options and JOB, ssh's options, JOB). A word
    that is neither, e.g. a remote command put before ``--``, is refused: ssh would take it for
    the host to connect to."""
    ours: list[str] = []
    ssh: list[str] = []
    job: str | None = None
    i = 0
    while i < len(words):
        word = words[i]
        if word.startswith("--") and word not in flags and \
                word.split("=", 1)[0] not in with_value:
            ours += words[i:]  # ssh has no long options: a --typo of ours, Click names it
            break
        if word in flags or word.split("=", 1)[0] in with_value:
            ours.append(word)
            if word in with_value and i + 1 < len(words):
                ours.append(words[i + 1])
                i += 1
        elif word.startswith("-") and len(word) > 1:
            ssh.append(word)
            if len(word) == 2 and word[1] in SSH_OPTIONS_WITH_VALUE and i + 1 < len(words):
                ssh.append(words[i + 1])
                i += 1
        elif job is None:
            ours.append(word)
            job = word
        else:
            rest = shlex.join(words[i:])
            raise UsageError(f"{word!r} is not an ssh option: only ssh options may come "
                             "before `--`", f"put the remote command after `--`: "
                             f"rescale-ssh shell {job} -- {rest}")
        i += 1
    return ours, ssh, job


# ssh options for a connection that neither uses nor becomes a job's shared one (mux.py).
UNSHARED = ("-o", "ControlMaster=no", "-o", "ControlPath=none")


def remote_command(workdir: str, command: list[str] | None = None) -> str:
    """What ssh sends: one string the remote user's shell runs. ssh joins the words after the
    host with spaces and the remote shell splits them again, so each word of ``command`` is
    quoted (shlex) and arrives as it was given: no remote globbing, pipes or $VARS unless the
    command is a shell's (``sh -c 'ls | wc -l'``)."""
    cd = f"cd {shlex.quote(workdir)}"  # workdir passed validate.remote_path
    if not command:
        return f'{cd} && exec "${{SHELL:-/bin/sh}}" -l'
    return f"{cd} && {shlex.join(command)}"


def ssh_command(settings: Settings, alias: str, workdir: str, extra: list[str],
                ssh_program: str | None = None, command: list[str] | None = None) -> list[str]:
    program = ssh_program or shutil.which("ssh")
    if program is None:
        raise ProgramError("ssh is not installed or not on PATH",
                           "install OpenSSH's client (the openssh-client package)")
    words = [program]
    default = Path(posix.passwd_home()) / ".ssh" / "config"
    if settings.ssh_config != default:
        words += ["-F", str(settings.ssh_config)]  # ssh reads only ~/.ssh/config by itself
    if not command and sys.stdin.isatty():
        words.append("-t")  # a login shell needs a terminal; a command gets one with -t
    return [*words, *extra, alias, remote_command(workdir, command)]


def run(
    settings: Settings,
    job: str,
    extra: list[str],
    *,
    command: list[str] | None = None,
    wait: bool,
    timeout: float,
    ssh_program: str | None,
    waiter: Callable[[Any, str, float], Any],
    notify: Callable[[str, str | None], None],
) -> int:
    if command and command[0].startswith("-"):
        raise UsageError(f"{command[0]!r} after `--` would be the remote command: ssh options "
                         "go before `--`",
                         f"rescale-ssh shell {job} {shlex.join(command)}")
    if wait:
        from rescale_ssh.cli.common import open_client

        with open_client(settings, polling=True) as client:
            waiter(client, job, timeout)
    try:
        where = hosts.locate(settings, job)
    except NotFoundError:
        where = _add(settings, job)
        notify(f"added {where.alias} to {settings.ssh_config}", None)
    _note_if_ending(settings, job, notify)
    words = ssh_command(settings, where.alias, where.workdir, extra, ssh_program, command)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # ^C belongs to the remote shell
    try:
        code = subprocess.call(words)
    except OSError as exc:  # --ssh PROGRAM, or ssh removed meanwhile: not a bug (exit 3)
        raise ProgramError(f"cannot run `{words[0]}`: {exc.strerror or exc}",
                           "install OpenSSH's client (the openssh-client package)") from None
    finally:
        signal.signal(signal.SIGINT, previous)
    if code == 255:  # ssh(1): 255 when it could not connect or log in, else the shell's code
        notify(f"ssh could not connect to {where.alias} or log in, or lost the connection "
               f"(exit 255): `rescale-ssh doctor {job}` says why", None)
    return code


def _add(settings: Settings, job: str) -> hosts.Where:
    from rescale_ssh.cli.common import open_client
    from rescale_ssh.platform import resolver

    with open_client(settings) as client:
        target = resolver.resolve(client, job)
    hosts.add(settings, target)
    return hosts.Where(target.alias, target.workdir, static=True)


def _note_if_ending(settings: Settings, job: str,
                    notify: Callable[[str, str | None], None]) -> None:
    """A completed job whose cluster is still up: the session ends when the cluster stops. A
    cluster launched with a key other than the block's: ssh will be refused (launchkey.py:
    the job detail, unless known from before)."""
    from rescale_ssh.cli.common import open_client
    from rescale_ssh.platform import joblist, launchkey, resolver

    try:
        with open_client(settings) as client:
            status = resolver.statuses(client, job)
            verdict = launchkey.check(client, job, _identity(settings, job))
    except RescaleSSHError:
        return  # no key or no platform: nothing to say, the connection may still work
    if verdict.message(job):
        notify(verdict.message(job) or "", launchkey.HINT)
    if status.job and joblist.is_final(status.job) and \
            joblist.ssh_state(status.job, status.cluster or "") != joblist.STOPPED:
        notify(joblist.ended_note(job), None)


def _identity(settings: Settings, job: str) -> str:
    """The key ssh offers the job: its block's, else the one the settings name."""
    try:
        return hosts.find(settings, job).identity or settings.identity
    except RescaleSSHError:
        return settings.identity
