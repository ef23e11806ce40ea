"""Settings: each a flag and an environment variable (the flag wins), then a default.

The API key is never a flag (it would show in ``ps``): ``RESCALE_API_KEY``, else the profile's
``apikey`` in the Rescale CLI's apiconfig, read as Rescale's tools read it (rescale-api.md):
``$RESCALE_CONFIG_FILE`` or ``~/.config/rescale/apiconfig``, profile ``[default]`` unless one is
chosen, keys ``apikey``/``api_key`` and ``apibaseurl``/``platform_url``.

The platform: ``--platform``, else ``RESCALE_API_URL``, else ``RESCALE_API_BASE_URL``, else the
profile's base URL, else North America.
"""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict
from urllib.parse import urlsplit

from rescale_ssh import paths, validate
from rescale_ssh.errors import AuthError, ConfigError, InvalidValueError, UsageError, shorten

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
    chosen_by: str | None = None  # "--profile" or RESCALE_PROFILE; None: the default
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
class Settings:
    """What the command line and environment chose. Flags are passed in; env is read here."""

    ssh_config_flag: str | None = None
    platform_flag: str | None = None
    profile_flag: str | None = None
    identity_flag: str | None = None
    # The apiconfig `install` was run with (hook.conf): what RESCALE_CONFIG_FILE said then.
    config_file_flag: str | None = None

    @property
    def ssh_config(self) -> Path:
        value = self.ssh_config_flag or os.environ.get(ENV_CONFIG)
        if not value:
            return paths.default_ssh_config()
        source = "--ssh-config" if self.ssh_config_flag else ENV_CONFIG
        validate.setting_path(value, field="ssh config file", source=source)
        return Path(os.path.abspath(os.path.expanduser(value)))

    @property
    def identity(self) -> str:
        value = self.identity_flag or os.environ.get(ENV_IDENTITY)
        source = "--identity" if self.identity_flag else (ENV_IDENTITY if value else None)
        if value:
            validate.setting_path(value, field="identity file", source=source)
        path = os.path.abspath(os.path.expanduser(value)) if value else str(
            paths.default_identity()
        )
        return validate.local_path(path, field="identity file", source=source)

    @property
    def known_hosts(self) -> str:
        return validate.local_path(str(paths.known_hosts()), field="known_hosts file")

    @property
    def profile_name(self) -> str | None:
        value = self.profile_flag or os.environ.get(ENV_PROFILE) or None
        if value is None:
            return None
        return validate.profile(value, source=self.profile_source)

    @property
    def profile_source(self) -> str | None:
        """What chose the profile: ``--profile``, RESCALE_PROFILE, or None (the default)."""
        if self.profile_flag:
            return "--profile"
        return ENV_PROFILE if os.environ.get(ENV_PROFILE) else None

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
        if self.platform_flag:
            return self.platform_flag, "--platform"
        for variable in (ENV_PLATFORM, ENV_BASE_URL):
            value = os.environ.get(variable, "")
            if value.strip():  # blank: unset; else validated as it is (a U+2028 is refused)
                return value, variable
        return None

    def platform(self) -> str:
        """The platform base URL, e.g. ``https://platform.rescale.com`` (no trailing slash)."""
        chosen = self.explicit_platform()
        if chosen is not None:
            return normalize_platform(chosen[0], source=chosen[1])
        return profile_platform(self.profile()) or DEFAULT_PLATFORM

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
