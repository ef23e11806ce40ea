"""Settings: each a flag, an environment variable and a line of the settings file, in that
order (the flag wins), then a default. The settings file (userconfig.py) holds identity,
platform, profile and ssh_config; the hook never reads it (``install`` copies into hook.conf
what the hook needs).

The API key is never a flag (it would show in ``ps``): ``RESCALE_API_KEY``, else the profile's
``apikey`` in the Rescale CLI's apiconfig, read as Rescale's tools read it (rescale-api.md):
``$RESCALE_CONFIG_FILE`` or ``~/.config/rescale/apiconfig``, profile ``[default]`` unless one is
chosen, keys ``apikey``/``api_key`` and ``apibaseurl``/``platform_url``.

The platform: ``--platform``, else ``RESCALE_API_URL``, else ``RESCALE_API_BASE_URL``, else the
settings file's, else the profile's base URL, else North America.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TypedDict
from urllib.parse import urlsplit

from rescale_ssh import paths, validate
from rescale_ssh.errors import (
    AuthError,
    ConfigError,
    InvalidValueError,
    RescaleSSHError,
    UsageError,
    shorten,
)

DEFAULT_PLATFORM = "https://platform.rescale.com"
REGIONS = {
    "us": "https://platform.rescale.com",
    "eu": "https://eu.rescale.com",
    "jp": "https://platform.rescale.jp",
    "kr": "https://kr.rescale.com",
    "itar": "https://itar.rescale.com",
    "itar-gov": "https://itar.rescale-gov.com",
}
ENV_CONFIG = "RESCALE_SSH_CONFIG"
ENV_PLATFORM = "RESCALE_API_URL"
# Rescale staff scripts' name for the same thing; RESCALE_API_URL (the contract's) wins.
ENV_BASE_URL = "RESCALE_API_BASE_URL"
ENV_PROFILE = "RESCALE_PROFILE"
ENV_CONFIG_FILE = paths.ENV_RESCALE_CONFIG_FILE
ENV_API_KEY = "RESCALE_API_KEY"
ENV_IDENTITY = "RESCALE_SSH_IDENTITY"
ENV_MULTIPLEX = "RESCALE_SSH_MULTIPLEX"
ENV_TIMEOUT = "RESCALE_SSH_TIMEOUT"  # no flag: for scripts, CI and tests that cannot wait
MAX_API_KEY = 4096
# What a platform URL may hold besides letters and digits: no spaces, quotes, backslashes,
# "$" or "`" (it is stored in hook.conf and shown in messages), nothing outside ASCII.
_URL_CHARS = frozenset("-._~:/?#[]@!&()*+,;=%")
# The profile every Rescale tool reads when none is chosen (the Rescale CLI, its newest client,
# the python-sdk), and the one `login` writes.
DEFAULT_PROFILE = "default"
# Each value's spellings, the Rescale CLI's first: it is read when both are there.
KEY_NAMES = ("apikey", "api_key")
URL_NAMES = ("apibaseurl", "platform_url")


@dataclass(frozen=True)
class Profile:
    """The section of the apiconfig a command reads, and why that one."""

    path: Path
    name: str | None  # None: the file has no section to read (or there is no file)
    values: dict[str, str]
    sections: tuple[str, ...]  # every section, in file order
    chosen_by: str | None = None  # --profile, RESCALE_PROFILE, the settings file; None: default
    legacy: bool = False  # read from where earlier versions kept it (paths.legacy_cli_config)

    @property
    def fallback(self) -> bool:
        """The file has no ``[default]``, so its first section is read: what rescale-ssh 0.1.0
        read and wrote (``[prod]`` on an empty file), so such a file keeps working."""
        return self.chosen_by is None and self.name not in (None, DEFAULT_PROFILE)

    def value(self, names: tuple[str, ...]) -> tuple[str, str] | None:
        """The first of ``names`` set to something other than blanks: (name, value)."""
        for name in names:
            text = self.values.get(name, "").strip()
            if text:
                return name, text
        return None

    def describe(self) -> str:
        return f"profile [{self.name}] of {self.path}"

    @property
    def note(self) -> str | None:
        """Why a section other than [default] is read unasked, for login, whoami and doctor."""
        notes = []
        if self.legacy:
            notes.append(f"read from {self.path}, where earlier rescale-ssh versions kept it "
                         "under XDG_CONFIG_HOME; `rescale-ssh login` writes "
                         "~/.config/rescale/apiconfig, the file the Rescale CLI reads")
        if self.fallback:
            notes.append(f"no [{DEFAULT_PROFILE}] there; `rescale-ssh login` writes "
                         f"[{DEFAULT_PROFILE}], the profile the Rescale CLI reads")
        return "; ".join(notes) or None


@dataclass(frozen=True)
class Choice:
    """A value chosen for a setting, and by what: ``kind`` is "flag", "env" or "file";
    ``source`` names it (``--identity``, ``RESCALE_SSH_IDENTITY``, ``FILE line N``)."""

    key: str
    value: str
    source: str
    kind: str


@dataclass(frozen=True)
class Settings:
    """What the command line, the environment and the settings file chose, in that order.
    Flags are passed in; the environment and the file (userconfig.py, only with ``use_file``:
    the CLI's, never the hook's) are read here."""

    ssh_config_flag: str | None = None
    platform_flag: str | None = None
    profile_flag: str | None = None
    identity_flag: str | None = None
    # The apiconfig `install` was run with (hook.conf): what RESCALE_CONFIG_FILE said then.
    config_file_flag: str | None = None
    multiplex_flag: str | None = None
    use_file: bool = False

    @cached_property
    def _file(self) -> dict[str, tuple[str, str]]:
        from rescale_ssh import userconfig

        if not self.use_file:
            return {}
        found = userconfig.read()
        for key, (value, where) in found.items():  # each checked at once: one bad line fails
            self._check(Choice(key, value, where, "file"))  # every command, not just its user
        return found

    def _check(self, chosen: Choice) -> None:
        if chosen.key == "identity":
            with _from_file(chosen):
                validate.local_path(self._path(chosen, "identity file"), field="identity file",
                                    source=chosen.source)
        elif chosen.key == "ssh_config":
            self._path(chosen, "ssh config file")
        elif chosen.key == "platform":
            with _from_file(chosen):
                normalize_platform(chosen.value, source=chosen.source, in_file=True)
        elif chosen.key == "multiplex":
            with _from_file(chosen):
                multiplex_value(chosen.value, source=chosen.source)
        else:
            with _from_file(chosen):
                validate.profile(chosen.value, source=chosen.source)

    def choice(self, key: str) -> Choice | None:
        """What chose ``key`` (identity, platform, profile, ssh_config), before any default."""
        flag_value, flag, variables = {
            "identity": (self.identity_flag, "--identity", (ENV_IDENTITY,)),
            "platform": (self.platform_flag, "--platform", (ENV_PLATFORM, ENV_BASE_URL)),
            "profile": (self.profile_flag, "--profile", (ENV_PROFILE,)),
            "ssh_config": (self.ssh_config_flag, "--ssh-config", (ENV_CONFIG,)),
            "multiplex": (self.multiplex_flag, "--multiplex", (ENV_MULTIPLEX,)),
        }[key]
        if flag_value:
            return Choice(key, flag_value, flag, "flag")
        for variable in variables:
            value = os.environ.get(variable, "")
            # A blank platform variable is unset; else validated as it is (a U+2028 is refused).
            if value.strip() if key == "platform" else value:
                return Choice(key, value, variable, "env")
        found = self._file.get(key)
        return None if found is None else Choice(key, found[0], found[1], "file")

    def _path(self, chosen: Choice, field: str) -> str:
        """A path as chosen, absolute; one from the file must not depend on the folder a
        command runs in (absolute, or starting with ~)."""
        with _from_file(chosen):
            validate.setting_path(chosen.value, field=field, source=chosen.source)
            if chosen.kind == "file" and not (chosen.value.startswith("~") or
                                              os.path.isabs(chosen.value)):
                raise InvalidValueError(field, chosen.value, "an absolute path, or one "
                                        "starting with ~", source=chosen.source)
        return os.path.abspath(os.path.expanduser(chosen.value))

    @property
    def multiplex(self) -> str:
        """The ControlPersist of the jobs' shared connections, or ``no`` (mux.py)."""
        chosen = self.choice("multiplex")
        if chosen is None:
            return validate.DEFAULT_PERSIST
        with _from_file(chosen):
            return multiplex_value(chosen.value, source=chosen.source)

    @property
    def ssh_config(self) -> Path:
        chosen = self.choice("ssh_config")
        if chosen is None:
            return paths.default_ssh_config()
        return Path(self._path(chosen, "ssh config file"))

    @property
    def identity(self) -> str:
        chosen = self.choice("identity")
        if chosen is None:
            path, source = str(paths.default_identity()), None
        else:
            path, source = self._path(chosen, "identity file"), chosen.source
        with _from_file(chosen):
            return validate.local_path(path, field="identity file", source=source)

    @property
    def known_hosts(self) -> str:
        return validate.local_path(str(paths.known_hosts()), field="known_hosts file")

    @property
    def profile_name(self) -> str | None:
        chosen = self.choice("profile")
        if chosen is None:
            return None
        with _from_file(chosen):
            return validate.profile(chosen.value, source=chosen.source)

    @property
    def profile_source(self) -> str | None:
        """What chose the profile: ``--profile``, RESCALE_PROFILE, the settings file's line, or
        None (the default)."""
        chosen = self.choice("profile")
        return None if chosen is None else chosen.source

    @property
    def login_path(self) -> Path:
        """The apiconfig to write: ``$RESCALE_CONFIG_FILE``, else
        ``~/.config/rescale/apiconfig``."""
        if self.config_file_flag:
            return Path(self.config_file_flag)
        value = os.environ.get(ENV_CONFIG_FILE)
        if value:
            validate.setting_path(value, field="Rescale CLI config file", source=ENV_CONFIG_FILE)
        return paths.rescale_cli_config()

    @property
    def chosen_config_file(self) -> str | None:
        """The apiconfig RESCALE_CONFIG_FILE names, as an absolute path (hook.conf keeps it:
        ssh started from an IDE may not have the variable)."""
        if self.config_file_flag:
            return self.config_file_flag
        return str(self.login_path) if os.environ.get(ENV_CONFIG_FILE) else None

    @property
    def profile_path(self) -> Path:
        """The apiconfig to read: :attr:`login_path`; where none is chosen and the fixed path
        has no file, the one earlier versions wrote under XDG_CONFIG_HOME, when it is there."""
        path = self.login_path
        if self.chosen_config_file is None and not path.exists():
            legacy = paths.legacy_cli_config()
            if legacy is not None and legacy.exists():
                return legacy
        return path

    def profile(self) -> Profile:
        """The chosen section of the apiconfig; else ``[default]``; else, for files written by
        rescale-ssh 0.1.0, the first section. A chosen profile that is missing is an error."""
        path = self.profile_path
        legacy = path != self.login_path
        parser = configparser.RawConfigParser()
        try:
            with open(path, encoding="utf-8") as handle:
                parser.read_file(handle)
        except FileNotFoundError:
            parser = configparser.RawConfigParser()
        except (OSError, UnicodeDecodeError, configparser.Error) as exc:
            raise ConfigError(f"cannot read {path}: {type(exc).__name__}",
                              "fix or remove the file, or set RESCALE_API_KEY") from None
        sections = tuple(parser.sections())
        name = self.profile_name
        if name is not None:
            if not parser.has_section(name):
                chosen = self.choice("profile")
                if chosen is not None and chosen.kind == "file":
                    raise ConfigError(
                        f"profile {name!r} (from {chosen.source}) is not in {path}",
                        f"profiles there: {', '.join(sections) or 'none'}; "
                        f"{_FIX.format(key='profile')}")
                raise UsageError(
                    f"profile {name!r} is not in {path}",
                    f"profiles there: {', '.join(sections) or 'none'}",
                )
            return Profile(path, name, dict(parser.items(name)), sections, self.profile_source,
                           legacy)
        if DEFAULT_PROFILE in sections:
            name = DEFAULT_PROFILE
        elif sections:
            name = sections[0]
        else:
            return Profile(path, None, {}, sections, legacy=legacy)
        return Profile(path, name, dict(parser.items(name)), sections, legacy=legacy)

    def explicit_platform(self) -> tuple[str, str] | None:
        """The platform as chosen for this run, before any profile: (value, where from)."""
        chosen = self.choice("platform")
        return None if chosen is None else (chosen.value, chosen.source)

    def platform(self) -> str:
        """The platform base URL, e.g. ``https://platform.rescale.com`` (no trailing slash)."""
        chosen = self.choice("platform")
        if chosen is not None:
            with _from_file(chosen):
                return normalize_platform(chosen.value, source=chosen.source,
                                          in_file=chosen.kind == "file")
        return profile_platform(self.profile()) or DEFAULT_PLATFORM

    def explain(self) -> list[Effective]:
        """Each setting of the settings file: its value now, and what chose it."""
        found = []
        for key in ("identity", "platform", "profile", "ssh_config", "multiplex"):
            chosen = self.choice(key)
            kind, origin = (chosen.kind, chosen.source) if chosen else ("default", "")
            if key == "identity":
                value = self.identity
            elif key == "multiplex":
                value = self.multiplex
            elif key == "ssh_config":
                value = str(self.ssh_config)
            elif key == "platform":
                value = self.platform()
                if chosen is None and profile_platform(self.profile()) is not None:
                    kind, origin = "profile", self.profile().describe()
            elif chosen is not None:
                value = self.profile_name or ""
            else:
                profile = self.profile()
                value = profile.name or ""
                origin = profile.describe() if profile.name is not None else ""
            found.append(Effective(key, value, kind, origin))
        return found

    def api_key(self) -> str:
        key = os.environ.get(ENV_API_KEY, "").strip()
        hint = ("run `rescale-ssh login`, set RESCALE_API_KEY, or use `add JOB --from-log` "
                "with the line from the job's logs")
        if not key:
            profile = self.profile()
            found = profile.value(KEY_NAMES)
            key = found[1] if found else ""
            if profile.name is not None and not key:
                hint = f"[{profile.name}] of {profile.path} holds no apikey: {hint}"
        if not key:
            raise AuthError("no Rescale API key", hint)
        if any(ord(c) < 33 or ord(c) > 126 for c in key):
            raise AuthError("the Rescale API key contains spaces or control characters",
                            "copy the key again from Settings → API")
        if len(key) > MAX_API_KEY:
            raise AuthError(f"the Rescale API key is longer than {MAX_API_KEY} characters",
                            "copy the key again from Settings → API")
        return key


@dataclass(frozen=True)
class Effective:
    key: str
    value: str
    kind: str  # "flag", "env", "file", "profile" (platform: the profile's apibaseurl), "default"
    origin: str  # what set it (--identity, RESCALE_PROFILE, FILE line N, a profile), or ""


_FIX = "fix it with `rescale-ssh config set {key} VALUE`, or `rescale-ssh config unset {key}`"


@contextmanager
def _from_file(chosen: Choice | None) -> Iterator[None]:
    """A bad value from the settings file is a local configuration problem (exit 3), with
    the command that fixes it; from a flag or variable, a usage error as before."""
    try:
        yield
    except RescaleSSHError as error:
        if chosen is None or chosen.kind != "file":
            raise
        fix = _FIX.format(key=chosen.key)
        hint = f"{error.hint}; {fix}" if error.hint else fix
        raise ConfigError(error.message, hint) from None


def profile_platform(profile: Profile) -> str | None:
    """The profile's own base URL (``apibaseurl``, else ``platform_url``), when it has one."""
    found = profile.value(URL_NAMES)
    if found is None:
        return None
    key, value = found
    return normalize_platform(value, source=f"{key} in [{profile.name}] of {profile.path}",
                              in_file=True)


class ClientLimits(TypedDict):
    deadline: float
    connect_timeout: float
    read_timeout: float


def client_limits(default: float) -> ClientLimits:
    """Time limits for a platform client whose calls must each end within
    :func:`request_deadline`: one request, or a whole list with every one of its pages, their
    retries and back-off included, however slowly the platform sends its bytes (client.py). An
    attempt gets at most a third of it, so a stalled one leaves room for retries (60 s: 5 s to
    connect, 20 s to read, as the client's own defaults)."""
    deadline = request_deadline(default)
    return ClientLimits(deadline=deadline, connect_timeout=min(5.0, deadline / 3),
                        read_timeout=min(20.0, deadline / 3))


def request_deadline(default: float) -> float:
    """The longest one request to the platform may take, retries included, in seconds:
    RESCALE_SSH_TIMEOUT when set, else ``default`` (each command's own)."""
    value = os.environ.get(ENV_TIMEOUT, "").strip()
    if not value:
        return default
    try:
        seconds = float(value) if value.isascii() else -1.0  # float() takes "١" too
    except ValueError:
        seconds = -1.0
    if not 0.1 <= seconds <= 3600:  # also refuses nan
        raise UsageError(f"invalid {ENV_TIMEOUT}: {shorten(value)} (seconds, from 0.1 to 3600)",
                         f"unset {ENV_TIMEOUT} or set it to a number of seconds")
    return seconds


def normalize_platform(value: str, *, source: str, in_file: bool = False) -> str:
    """A region name or URL → base URL. Accepts a full ``.../api/v3/`` or ``/api/v2/`` URL
    (older tools set RESCALE_API_URL so) and a URL without its ``https://``.

    The host must pass :func:`validate.host` (ASCII: no look-alike letters that would send the
    API key elsewhere); urlsplit's silent removal of tabs and newlines is not relied upon. A bad
    value typed by the user is a usage error; one read from a file (``in_file``) a config error.
    """
    value = value.strip(" ")
    if value.lower() in REGIONS:
        return REGIONS[value.lower()]
    error = (ConfigError if in_file else UsageError)(
        f"invalid platform from {source}: {shorten(value)}",
        f"use a URL like {DEFAULT_PLATFORM} or a region: {', '.join(REGIONS)}",
    )
    if not 0 < len(value) <= 2048 or not all(c.isascii() and (c.isalnum() or c in _URL_CHARS)
                                               for c in value):
        raise error
    # A bare host name (``eu.rescale.com``), as Rescale's newest client accepts it, is https.
    parts = urlsplit(value if "://" in value else f"https://{value}")
    if parts.scheme not in ("http", "https") or not parts.netloc or "@" in parts.netloc:
        raise error
    try:
        validate.host(parts.hostname or "")
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except (InvalidValueError, ValueError):
        raise error from None
    path = parts.path.rstrip("/")
    for suffix in ("/api/v2", "/api/v3", "/api"):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
            break
    return f"{parts.scheme}://{parts.netloc}{path}"


def for_file(key: str, value: str, *, source: str = "the command line") -> str:
    """``value`` for ``key`` of the settings file, checked as the flag's would be. A relative
    path is made absolute here (in the file it would depend on the folder a command runs
    in); one starting with ``~`` is kept so, and one below the home folder written so."""
    if key in ("identity", "ssh_config"):
        field = "identity file" if key == "identity" else "ssh config file"
        validate.setting_path(value, field=field, source=source)
        stored = value if value.startswith("~") else paths.shown(os.path.abspath(value))
        expanded = os.path.abspath(os.path.expanduser(stored))
        if key == "identity":
            validate.local_path(expanded, field=field, source=source)
        return stored
    if key == "platform":
        normalize_platform(value, source=source)
        return value.strip(" ")
    if key == "multiplex":
        multiplex_value(value, source=source)
        return value.strip()
    return validate.profile(value, source=source)


def multiplex_value(value: str, *, source: str) -> str:
    """``yes`` (the default time), ``no``, or how long a job's shared connection outlives its
    last session (ssh_config(5) ControlPersist: ``300``, ``5m``, ``1h``)."""
    if value.strip().lower() in ("yes", "on", "true"):
        return validate.DEFAULT_PERSIST
    try:
        return validate.persist_value(value)
    except ValueError as error:
        raise InvalidValueError("multiplex", value, f"yes, no, or a time such as 5m or 1h; "
                                f"{str(error).split(' ', 1)[1]}", source=source) from None
