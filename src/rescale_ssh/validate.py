"""Validation of every value that may reach an ssh config file (design.md, "Shape of the code").

Standard library only (the hook validates cached values too). Each function returns the value in
canonical form or raises :class:`InvalidValueError` naming the field. Patterns are ASCII-only and
matched with ``fullmatch``, so newlines, NUL, quotes, ``%`` tokens, ``${...}``, spaces and Unicode
look-alikes never pass the remote-side checks.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata

from rescale_ssh.errors import InvalidValueError

MAX_JOB_ID = 64
MAX_USER = 64
MAX_HOSTNAME = 253
MAX_PATH = 1024

_JOB_ID = re.compile(r"[A-Za-z0-9]+", re.ASCII)
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", re.ASCII)
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?", re.ASCII)
# Remote paths: a conservative ASCII set with no spaces, quotes, backslash, backtick, "$" or "%"
# (a remote shell or ssh token expansion would interpret them when the path is used).
_REMOTE_PATH = re.compile(r"/[A-Za-z0-9_./+@,=~-]*", re.ASCII)


def job_id(value: str, *, source: str | None = None) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_JOB_ID or not _JOB_ID.fullmatch(
        value
    ):
        raise InvalidValueError("job ID", value, "letters and digits only", source=source)
    return value


def user(value: object, *, source: str | None = None) -> str:
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= MAX_USER
        or not _USER.fullmatch(value)
    ):
        raise InvalidValueError(
            "user name",
            value,
            "letters, digits, '_', '.', '-', not starting with '-' or '.'",
            source=source,
        )
    return value


def host(value: object, *, source: str | None = None) -> str:
    """An IP literal (returned in canonical form) or a strict DNS host name."""
    rule = "an IP address or a host name of letters, digits, '-' and '.'"
    # "%" would also start an ssh_config token (scoped IPv6 literals like fe80::1%eth0).
    if not isinstance(value, str) or not 0 < len(value) <= MAX_HOSTNAME or "%" in value:
        raise InvalidValueError("host", value, rule, source=source)
    if (value.isascii() and ":" in value) or value.replace(".", "").isdigit():
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise InvalidValueError("host", value, rule, source=source) from None
    name = value[:-1] if value.endswith(".") else value
    if not name or not all(_LABEL.fullmatch(label) for label in name.split(".")):
        raise InvalidValueError("host", value, rule, source=source)
    return name


def port(value: object, *, source: str | None = None) -> int:
    rule = "a whole number from 1 to 65535"
    if isinstance(value, bool):
        raise InvalidValueError("port", value, rule, source=source)
    if isinstance(value, str):
        if not value.isascii() or not value.isdigit() or len(value) > 5:
            raise InvalidValueError("port", value, rule, source=source)
        value = int(value)
    if not isinstance(value, int) or not 1 <= value <= 65535:
        raise InvalidValueError("port", value, rule, source=source)
    return value


def remote_path(
    value: object, *, field: str = "working directory", source: str | None = None
) -> str:
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= MAX_PATH
        or not _REMOTE_PATH.fullmatch(value)
        or "//" in value
    ):
        raise InvalidValueError(
            field,
            value,
            "an absolute path of letters, digits and / _ . + @ , = ~ -",
            source=source,
        )
    return value


def local_path(value: str, *, field: str, source: str | None = None) -> str:
    """A local file path that will be written into the ssh config (quoted and %-escaped there).

    Refused: relative paths, control and format characters, line or paragraph separators, double
    quotes (the ssh config tokenizer has no escape for them), ``#`` (a comment to some parsers) and
    ``${`` (environment expansion).
    """
    if not isinstance(value, str) or not 0 < len(value) <= 4096:
        raise InvalidValueError(field, value, "a path", source=source)
    if '"' in value or "#" in value or "${" in value:
        raise InvalidValueError(field, value, 'no double quotes, "#" or "${"', source=source)
    for char in value:
        if unicodedata.category(char)[0] == "C" or unicodedata.category(char) in ("Zl", "Zp"):
            raise InvalidValueError(field, value, "no control characters", source=source)
    if not (value.startswith("/") or _is_windows_absolute(value)):
        raise InvalidValueError(field, value, "an absolute path", source=source)
    return value


def _is_windows_absolute(value: str) -> bool:
    return len(value) > 2 and value[0].isalpha() and value[1] == ":" and value[2] in "\\/"
