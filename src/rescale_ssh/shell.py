"""``shell JOB``: an interactive login shell in the job's working directory."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rescale_ssh import hosts, posix
from rescale_ssh.errors import NotFoundError, RescaleSSHError
from rescale_ssh.settings import Settings


def remote_command(workdir: str) -> str:
    # The working directory passed validate.remote_path: no quote, space or $ in it.
    return f"cd '{workdir}' && exec \"${{SHELL:-/bin/sh}}\" -l"


def ssh_command(settings: Settings, alias: str, workdir: str, extra: list[str],
                ssh_program: str | None = None) -> list[str]:
    program = ssh_program or shutil.which("ssh")
    if program is None:
        raise NotFoundError("ssh is not installed", "install OpenSSH's client")
    command = [program]
    default = Path(posix.passwd_home()) / ".ssh" / "config"
    if settings.ssh_config != default:
        command += ["-F", str(settings.ssh_config)]  # ssh reads only ~/.ssh/config by itself
    if sys.stdin.isatty():
        command.append("-t")
    return [*command, *extra, alias, remote_command(workdir)]


def run(
    settings: Settings,
    job: str,
    extra: list[str],
    *,
    wait: bool,
    timeout: float,
    ssh_program: str | None,
    waiter: Callable[[Any, str, float], Any],
    notify: Callable[[str, str | None], None],
) -> int:
    if wait:
        from rescale_ssh.cli_common import open_client

        with open_client(settings, polling=True) as client:
            waiter(client, job, timeout)
    try:
        where = hosts.locate(settings, job)
    except NotFoundError:
        where = _add(settings, job)
        notify(f"added {where.alias} to {settings.ssh_config}", None)
    _note_if_ending(settings, job, notify)
    command = ssh_command(settings, where.alias, where.workdir, extra, ssh_program)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # ^C belongs to the remote shell
    try:
        code = subprocess.call(command)
    finally:
        signal.signal(signal.SIGINT, previous)
    if code == 255:  # ssh(1): 255 when it could not connect or log in, else the shell's code
        notify(f"ssh could not connect to {where.alias} or log in (exit 255): "
               f"`rescale-ssh doctor {job}` says why", None)
    return code


def _add(settings: Settings, job: str) -> hosts.Where:
    from rescale_ssh import resolver
    from rescale_ssh.cli_common import open_client

    with open_client(settings) as client:
        target = resolver.resolve(client, job)
    hosts.add(settings, target)
    return hosts.Where(target.alias, target.workdir, static=True)


def _note_if_ending(settings: Settings, job: str,
                    notify: Callable[[str, str | None], None]) -> None:
    """A completed job whose cluster is still up: the session ends when the cluster stops. A
    cluster launched with a key other than the block's: ssh will be refused (launchkey.py:
    the job detail, unless known from before)."""
    from rescale_ssh import joblist, launchkey, resolver
    from rescale_ssh.cli_common import open_client

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
