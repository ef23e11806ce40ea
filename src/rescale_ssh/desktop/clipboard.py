"""Copying text to the desktop's clipboard with whatever tool the system has.

Wayland (wl-copy) and X11 (xclip, xsel) tools are used only when their display is set, so a
headless machine is not made to wait for them; macOS has pbcopy, Windows and WSL clip.exe.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from rescale_ssh import programs
from rescale_ssh.errors import ProgramError

# (program, arguments, environment variable that must be set, or "")
TOOLS = (
    ("wl-copy", (), "WAYLAND_DISPLAY"),
    ("xclip", ("-selection", "clipboard"), "DISPLAY"),
    ("xsel", ("--clipboard", "--input"), "DISPLAY"),
    ("pbcopy", (), ""),
    ("clip.exe", (), ""),
)


@dataclass(frozen=True)
class Copied:
    tool: str | None  # the program that took the text; None when none could
    problem: str | None = None  # why not, when a tool exists but failed


def copy(text: str) -> Copied:
    """Put ``text`` on the clipboard with the first usable tool."""
    problem = None
    for name, args, needs in TOOLS:
        if needs and not os.environ.get(needs):
            continue
        program = programs.which(name)
        if program is None:
            continue
        try:
            code = programs.feed([program, *args], text)
        except ProgramError as error:
            problem = error.message
            continue
        if code == 0:
            return Copied(name)
        problem = f"{name} exited with {code}"
    return Copied(None, problem)
