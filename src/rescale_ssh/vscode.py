"""Opening VS Code Remote-SSH on a job's working directory."""

from __future__ import annotations

import shutil
import subprocess
from typing import TYPE_CHECKING

from rescale_ssh.errors import NotFoundError, RescaleSSHError

if TYPE_CHECKING:
    from rescale_ssh.settings import Settings


def folder_uri(alias: str, workdir: str) -> str:
    # The Remote-SSH authority is "ssh-remote+<host>"; the path follows it directly.
    return f"vscode-remote://ssh-remote+{alias}{workdir}"


def open_folder(alias: str, workdir: str) -> None:
    program = shutil.which("code") or shutil.which("code-insiders")
    if program is None:
        raise NotFoundError(
            "VS Code's `code` command is not on PATH",
            "in VS Code run 'Shell Command: Install code command in PATH', or open "
            f"{folder_uri(alias, workdir)} from VS Code's Remote-SSH",
        )
    proc = subprocess.run([program, "--folder-uri", folder_uri(alias, workdir)],
                          capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise RescaleSSHError(
            f"`{program} --folder-uri ...` exited with {proc.returncode}"
            + (f": {detail[-1]}" if detail else ""),
            "check that the Remote-SSH extension is installed",
        )


def refusal(settings: Settings, job: str) -> str | None:
    """VS Code runs ssh itself: why the cluster will refuse the key, when that is known without
    a request (launchkey.py: what add, sync or status learned); None otherwise."""
    from rescale_ssh import hosts, launchkey

    try:
        identity = hosts.find(settings, job).identity or settings.identity
    except RescaleSSHError:
        identity = settings.identity
    try:
        return launchkey.known_verdict(settings.platform(), job, identity).message(job)
    except RescaleSSHError:
        return None
