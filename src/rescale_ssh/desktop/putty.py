"""A job as a PuTTY saved session: what it holds, and its two written forms.

PuTTY keeps a session as ``Key=Value`` lines in a file on Linux and macOS
(``~/.putty/sessions/<name>``) and as values of a registry key on Windows
(``HKEY_CURRENT_USER\\Software\\SimonTatham\\PuTTY\\Sessions\\<name>``); a ``.reg`` file holds
the latter as text for regedit. Both are rendered here from a validated :class:`Session`; where
they are written (and that only ours are replaced or removed) is puttysessions.py.

Facts checked against plink 0.78 (Debian's putty-tools):
- ``PortNumber`` is read only together with a ``Protocol`` it knows: without ``Protocol=ssh``
  plink connects to port 22 whatever the port says.
- ``SSHManualHostKeys`` is a comma-separated list; an entry ``SHA256:<base64 without padding>``
  (or MD5 as bare hex pairs, without ``MD5:``) pins the host key: plink -batch then connects
  with no prompt, and refuses any other key ("Host key not in manually configured list").
- A line without ``=`` in a session file is skipped (our comment line; PuTTY drops it when
  the session is saved again from its window).
- The sessions folder: ``$PUTTYSESSIONS``, else ``$PUTTYDIR/sessions``, else
  ``$XDG_CONFIG_HOME/putty/sessions`` (``~/.config/putty``) when that folder exists, else
  ``~/.putty/sessions`` ($HOME, then the passwd entry's home): unix/storage.c.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from rescale_ssh import validate
from rescale_ssh.errors import ConfigError, InvalidValueError
from rescale_ssh.target import Target, alias_for

REGISTRY_KEY = "Software\\SimonTatham\\PuTTY\\Sessions"
REG_HEADER = "Windows Registry Editor Version 5.00"
MAX_HOST_KEYS = 16
# Windows PuTTY's escaping of a session name for the registry (windows/storage.c): these
# characters, control characters, and a leading dot become %XX.
_REG_UNSAFE = frozenset(" \\*?%")
# Unix PuTTY's (unix/storage.c): everything but these becomes %XX in the file name.
_FILE_SAFE = frozenset("+-.@_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_BASE64 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


@dataclass(frozen=True)
class Session:
    """One saved session; built only by :func:`session`, which validates every value."""

    name: str
    job: str
    host: str
    port: int
    user: str
    key_file: str
    host_keys: tuple[str, ...]  # SHA256:... fingerprints; empty: PuTTY asks once

    def values(self) -> list[tuple[str, str | int]]:
        """The settings, in the order PuTTY itself writes them (``Present`` first)."""
        values: list[tuple[str, str | int]] = [
            ("Present", 1),
            ("HostName", self.host),
            ("PortNumber", self.port),
            ("Protocol", "ssh"),
            ("UserName", self.user),
            ("PublicKeyFile", self.key_file),
        ]
        if self.host_keys:
            values.append(("SSHManualHostKeys", ",".join(self.host_keys)))
        return values


def session_name(job: str) -> str:
    """The session's name: the job's ssh alias, ``rescale-<JOB>``."""
    return alias_for(validate.job_id(job, source="the command line"))


def session(target: Target, key_file: str, host_keys: Iterable[str] = ()) -> Session:
    """The session for ``target`` with the PuTTY key ``key_file``, pinning ``host_keys``."""
    source = "the job's target"
    job = validate.job_id(target.job, source=source)
    keys = tuple(dict.fromkeys(_fingerprint(value) for value in host_keys))
    if len(keys) > MAX_HOST_KEYS:
        raise InvalidValueError("host keys", len(keys), f"at most {MAX_HOST_KEYS}",
                                source="the known_hosts file")
    return Session(
        name=alias_for(job),
        job=job,
        host=validate.host(target.host, source=source),
        port=validate.port(target.port, source=source),
        user=validate.user(target.user, source=source),
        key_file=validate.local_path(key_file, field="PuTTY key file"),
        host_keys=keys,
    )


def _fingerprint(value: object) -> str:
    """``SHA256:`` and 43 characters of base64: nothing else reaches the comma list."""
    rest = value[7:] if isinstance(value, str) and value.startswith("SHA256:") else ""
    if len(rest) != 43 or not _BASE64.issuperset(rest):
        raise InvalidValueError("host key fingerprint", value, "SHA256: and 43 base64 "
                                "characters", source="the known_hosts file")
    return str(value)


def fingerprint(blob: bytes) -> str:
    """A public key's SHA256 fingerprint as ssh-keygen -l and PuTTY print it."""
    digest = hashlib.sha256(blob).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


# -- the file form (Linux, macOS) ---------------------------------------------------------


def file_name(name: str) -> str:
    """The session's file name, escaped as Unix PuTTY escapes it (``%XX``, capital hex)."""
    return "".join(c if c in _FILE_SAFE else "".join(f"%{b:02X}" for b in c.encode())
                   for c in name)


def render_file(item: Session) -> str:
    """The session file's text: ``Key=Value`` lines, LF line ends, as PuTTY writes them."""
    lines = [f"# Written by rescale-ssh for job {item.job}: `rescale-ssh putty {item.job}` "
             "rewrites it, `rescale-ssh prune` removes it once the job's cluster stopped."]
    for key, value in item.values():
        if any(ord(c) < 32 for c in str(value)):  # (validated: a second guard, never met)
            raise ConfigError("a PuTTY session value contains a control character")
        lines.append(f"{key}={value}")
    return "\n".join(lines) + "\n"


def sessions_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where PuTTY on Linux and macOS reads saved sessions (unix/storage.c, make_filename)."""
    env = os.environ if env is None else env
    if "PUTTYSESSIONS" in env:
        return Path(env["PUTTYSESSIONS"])
    return putty_dir(env) / "sessions"


def putty_dir(env: Mapping[str, str]) -> Path:
    if "PUTTYDIR" in env:
        return Path(env["PUTTYDIR"])
    home = env.get("HOME") or _passwd_home()
    xdg = env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    if os.path.exists(os.path.join(xdg, "putty")):
        return Path(xdg) / "putty"
    return Path(home) / ".putty"


def _passwd_home() -> str:
    from rescale_ssh import posix

    return posix.passwd_home()


# -- the registry form (Windows) ----------------------------------------------------------


def registry_name(name: str) -> str:
    """The session's registry key name, escaped as Windows PuTTY escapes it."""
    out = []
    for index, char in enumerate(name):
        if char in _REG_UNSAFE or ord(char) < 32 or (char == "." and index == 0):
            out.append("".join(f"%{b:02X}" for b in char.encode()))
        else:
            out.append(char)
    return "".join(out)


def render_reg(items: Iterable[Session]) -> str:
    """A ``.reg`` file (regedit's version 5 text, CRLF line ends) holding ``items``."""
    lines = [REG_HEADER, ""]
    for item in items:
        lines.append(f"[HKEY_CURRENT_USER\\{REGISTRY_KEY}\\{registry_name(item.name)}]")
        for key, value in item.values():
            if isinstance(value, int):
                lines.append(f'"{key}"=dword:{value:08x}')
            else:
                lines.append(f'"{key}"="{reg_string(value)}"')
        lines.append("")
    return "\r\n".join(lines) + "\r\n"


def reg_string(value: str) -> str:
    """A string value inside ``"..."`` of a .reg file: backslash and quote escaped."""
    if any(ord(c) < 32 for c in value):
        raise ConfigError("a PuTTY session value contains a control character")
    return value.replace("\\", "\\\\").replace('"', '\\"')


def reg_bytes(text: str) -> bytes:
    """How regedit's own exports are encoded (UTF-16 LE with a BOM): any path imports as
    it is, whatever the machine's code page."""
    return b"\xff\xfe" + text.encode("utf-16-le")
