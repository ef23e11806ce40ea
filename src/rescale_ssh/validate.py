"""Validation of every value that may reach an ssh config file (design.md, "Shape of the code").

Standard library only and cheap to import (the ssh hook validates cached values on every run):
character-set checks instead of ``re``; ``ipaddress`` and ``unicodedata`` load only when needed.
Each function returns the value in canonical form or raises :class:`InvalidValueError` naming the
field. Remote-side values are ASCII-only, so newlines, NUL, quotes, ``%`` tokens, ``${...}``,
spaces and Unicode look-alikes never pass.
"""

from __future__ import annotations

from rescale_ssh.errors import InvalidValueError

MAX_JOB_ID = 64
MAX_USER = 64
MAX_HOSTNAME = 253
MAX_PATH = 1024
MAX_LOCAL_PATH = 4096
# ControlPersist (sshconfig/mux.py): how long a job's shared connection outlives its last session.
DEFAULT_PERSIST = "5m"
OFF = "no"
_DURATION = r"(?:[1-9][0-9]{0,5}[smhdwSMHDW]?)(?:[0-9]{1,6}[smhdwSMHDW])*"  # re: not on import
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_PERSIST = 7 * 86400  # a week: a forgotten master is ended by ServerAlive anyway

_ALNUM = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_USER = _ALNUM | frozenset("_.-")
_LABEL = _ALNUM | frozenset("-")
# Remote paths: a conservative ASCII set with no spaces, quotes, backslash, backtick, "$" or "%"
# (a remote shell or ssh token expansion would interpret them when the path is used).
_REMOTE_PATH = _ALNUM | frozenset("_./+@,=~-")
_PROFILE = _ALNUM | frozenset("_.-@+:")
MAX_PROFILE = 64


def job_id(value: object, *, source: str | None = None) -> str:
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= MAX_JOB_ID
        or not _ALNUM.issuperset(value)
    ):
        raise InvalidValueError("job ID", value, "letters and digits only", source=source)
    return value


def user(value: object, *, source: str | None = None) -> str:
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= MAX_USER
        or not _USER.issuperset(value)
        or value[0] in "-."
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
    if ":" in value or value.replace(".", "").isdigit():
        if _is_plain_ipv4(value):
            return value
        import ipaddress

        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise InvalidValueError("host", value, rule, source=source) from None
    name = value[:-1] if value.endswith(".") else value
    if not name or not all(_is_label(label) for label in name.split(".")):
        raise InvalidValueError("host", value, rule, source=source)
    return name


def _is_plain_ipv4(value: str) -> bool:
    parts = value.split(".")
    return len(parts) == 4 and all(
        p.isascii() and p.isdigit() and len(p) <= 3 and int(p) <= 255 and (p == "0" or p[0] != "0")
        for p in parts
    )


def _is_label(label: str) -> bool:
    return (
        0 < len(label) <= 63
        and _LABEL.issuperset(label)
        and label[0] != "-"
        and label[-1] != "-"
    )


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


def profile(value: object, *, source: str | None = None) -> str:
    """A section name of the Rescale CLI's apiconfig, as chosen with --profile."""
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= MAX_PROFILE
        or not _PROFILE.issuperset(value)
        or value[0] == "-"
    ):
        raise InvalidValueError("profile", value, "letters, digits and _ . - @ + :, not "
                                "starting with '-'", source=source)
    return value


def remote_path(
    value: object, *, field: str = "working directory", source: str | None = None
) -> str:
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= MAX_PATH
        or value[0] != "/"
        or not _REMOTE_PATH.issuperset(value)
        or "//" in value
    ):
        raise InvalidValueError(
            field,
            value,
            "an absolute path of letters, digits and / _ . + @ , = ~ -",
            source=source,
        )
    return value


def local_path(value: object, *, field: str, source: str | None = None) -> str:
    """A local file path that will be written into the ssh config (quoted and %-escaped there).

    Refused: relative paths, control and format characters, line or paragraph separators, double
    quotes (the ssh config tokenizer has no escape for them), ``#`` (a comment to some parsers),
    ``'`` (we quote paths with it in commands), ``${`` (environment expansion) and, outside
    Windows paths, backslashes (ssh's tokenizer takes ``\\`` as an escape).
    """
    if not isinstance(value, str) or not 0 < len(value) <= MAX_LOCAL_PATH:
        raise InvalidValueError(field, value, "a path", source=source)
    if any(bad in value for bad in ('"', "'", "#", "${")):
        raise InvalidValueError(field, value, "no quotes, \"#\" or \"${\"", source=source)
    _printable(value, field=field, source=source)
    if not (value.startswith("/") or _is_windows_absolute(value)):
        raise InvalidValueError(field, value, "an absolute path", source=source)
    if "\\" in value and not _is_windows_absolute(value):
        raise InvalidValueError(field, value, "no backslashes", source=source)
    return value


def setting_path(value: object, *, field: str, source: str | None = None) -> str:
    """A path as given in a flag or environment variable, before it is made absolute: not
    empty, no control characters, not an option (``-oProxyCommand=...``)."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_LOCAL_PATH:
        raise InvalidValueError(field, value, "a path", source=source)
    _printable(value, field=field, source=source)
    if value.startswith("-"):
        raise InvalidValueError(field, value, "a path, not an option", source=source)
    return value


def _printable(value: str, *, field: str, source: str | None) -> None:
    """No control or format characters, no line or paragraph separators (U+2028, U+2029)."""
    if value.isascii() and value.isprintable():
        return
    import unicodedata

    for char in value:
        category = unicodedata.category(char)
        if category[0] == "C" or category in ("Zl", "Zp"):
            raise InvalidValueError(field, value, "no control characters", source=source)


def _is_windows_absolute(value: str) -> bool:
    return len(value) > 2 and value[0].isalpha() and value[1] == ":" and value[2] in "\\/"


def shown(value: str, limit: int) -> str:
    """Text from outside (the platform, a record) fit for a terminal: printable characters only
    (no escape sequence or line break reaches it) and at most ``limit`` of them."""
    return "".join(c for c in value if c.isprintable())[:limit]


def seconds(value: str) -> int:
    """ssh_config(5) TIME FORMATS: ``300``, ``5m``, ``1h30m``. ValueError if not one."""
    import re

    if not re.fullmatch(_DURATION, value):
        raise ValueError(value)
    total = 0
    for number, unit in re.findall(r"([0-9]+)([smhdwSMHDW]?)", value):
        total += int(number) * _UNIT[unit.lower()]
    return total


def persist_value(value: str) -> str:
    """A ControlPersist setting as written: a time of at most a week, or ``no`` (no sharing).
    ``yes``/``0`` (for ever) are refused: a master of a stopped cluster would never go."""
    text = value.strip()
    if text.lower() in ("no", "off", "false"):
        return OFF
    try:
        total = seconds(text)
    except ValueError:
        raise ValueError(f"{value!r} is not a time such as 300, 5m or 1h30m") from None
    if not 0 < total <= MAX_PERSIST:
        raise ValueError(f"{value!r} is not between 1 second and a week")
    return text
