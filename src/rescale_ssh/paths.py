"""Where rescale-ssh keeps its own files. Standard library only (the hook uses it).

XDG base directories on POSIX, %LOCALAPPDATA% on Windows. Every path is absolute, expanded from
$HOME (not from the passwd entry as ssh does), so it can be written into an ssh config literally.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

APP = "rescale-ssh"


def home() -> Path:
    return Path(os.path.expanduser("~"))


def _xdg(variable: str, fallback: str) -> Path:
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        base = os.environ.get("LOCALAPPDATA") or str(home() / "AppData" / "Local")
        return Path(base) / APP
    value = os.environ.get(variable, "")
    base = Path(value) if value and os.path.isabs(value) else home() / fallback
    return base / APP


def state_dir() -> Path:
    """Tool-owned known_hosts and lock files."""
    return _xdg("XDG_STATE_HOME", ".local/state")


def settings_file() -> Path:
    """The user's settings (userconfig.py): ``$XDG_CONFIG_HOME/rescale-ssh/config.toml``, else
    ``~/.config/rescale-ssh/config.toml``. Never read by the hook."""
    return _xdg("XDG_CONFIG_HOME", ".config") / "config.toml"


def known_hosts() -> Path:
    return state_dir() / "known_hosts"


ENV_RESCALE_CONFIG_FILE = "RESCALE_CONFIG_FILE"


def rescale_cli_config() -> Path:
    """The Rescale CLI's profile file, shared with it: ``$RESCALE_CONFIG_FILE`` when set (as
    Rescale's newest client reads it), else ``~/.config/rescale/apiconfig``. A fixed path:
    Rescale's tools do not follow XDG_CONFIG_HOME, and a file they do not read is no use."""
    value = os.environ.get(ENV_RESCALE_CONFIG_FILE, "")
    if value:
        return Path(os.path.abspath(os.path.expanduser(value)))
    return home() / ".config" / "rescale" / "apiconfig"


def legacy_cli_config() -> Path | None:
    """Where rescale-ssh before the fixed path kept the profile file when XDG_CONFIG_HOME was
    set (and Rescale's tools never looked): still read when the fixed path has none."""
    value = os.environ.get("XDG_CONFIG_HOME", "")
    if not value or not os.path.isabs(value):
        return None
    path = Path(value) / "rescale" / "apiconfig"
    return None if path == home() / ".config" / "rescale" / "apiconfig" else path


def default_ssh_config() -> Path:
    return home() / ".ssh" / "config"


def default_identity() -> Path:
    return home() / ".ssh" / "rescale_ed25519"


def shown(path: str) -> str:
    """A path as a person types it: ``~/...`` below the home folder, else as it is."""
    base = str(home()).rstrip(os.sep) + os.sep
    return "~/" + path[len(base):] if path.startswith(base) else path


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) as needed, each folder created with mode 0700."""
    if not path.is_dir():
        from rescale_ssh import store

        store.ensure_dir(str(path))
    return path
