"""Opening VS Code Remote-SSH on a job's working directory."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from rescale_ssh.errors import ProgramError, RescaleSSHError

if TYPE_CHECKING:
    from rescale_ssh.settings import Settings


def folder_uri(alias: str, workdir: str) -> str:
    # The Remote-SSH authority is "ssh-remote+<host>"; the path follows it directly.
    return f"vscode-remote://ssh-remote+{alias}{workdir}"


def open_folder(alias: str, workdir: str, say: Callable[[str], None] | None = None) -> None:
    """``say`` is told what is opened once VS Code's command is found (not before an error
    that it is not there)."""
    from rescale_ssh import programs

    program = programs.which("code") or programs.which("code-insiders")
    if program is None:  # a local program missing: exit 3, like ssh or ssh-keygen
        raise ProgramError(
            "VS Code's `code` command is not on PATH",
            "install VS Code and run \"Shell Command: Install 'code' command in PATH\" from its "
            f"Command Palette, or open {folder_uri(alias, workdir)} from VS Code's Remote-SSH",
        )
    if say is not None:
        say(f"Opening {folder_uri(alias, workdir)}")
    done = programs.run([program, "--folder-uri", folder_uri(alias, workdir)], timeout=60)
    if done.returncode != 0:
        raise ProgramError(done.describe(), "check that the Remote-SSH extension is installed")


def refusal(settings: Settings, job: str) -> str | None:
    """VS Code runs ssh itself: why the cluster will refuse the key, when that is known without
    a request (launchkey.py: what add, sync or status learned); None otherwise."""
    from rescale_ssh.platform import launchkey
    from rescale_ssh.sshconfig import hosts

    try:
        identity = hosts.find(settings, job).identity or settings.identity
    except RescaleSSHError:
        identity = settings.identity
    try:
        return launchkey.known_verdict(settings.platform(), job, identity).message(job)
    except RescaleSSHError:
        return None
