"""Settings: each a flag and an environment variable (the flag wins), then a default.

The API key is never a flag (it would show in ``ps``): ``RESCALE_API_KEY``, else the profile's
``apikey`` in the Rescale CLI's ``~/.config/rescale/apiconfig``.
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
ENV_PROFILE = "RESCALE_PROFILE"
ENV_API_KEY = "RESCALE_API_KEY"
ENV_IDENTITY = "RESCALE_SSH_IDENTITY"
ENV_TIMEOUT = "RESCALE_SSH_TIMEOUT"  # no flag: for scripts, CI and tests that cannot wait
MAX_API_KEY = 4096
# What a platform URL may hold besides letters and digits: no spaces, quotes, backslashes,
# "$" or "`" (it is stored in hook.conf and shown in messages), nothing outside ASCII.
_URL_CHARS = frozenset("-._~:/?#[]@!&()*+,;=%")


@dataclass(frozen=True)
class Settings:
    """What the command line and environment chose. Flags are passed in; env is read here."""

    ssh_config_flag: str | None = None
    platform_flag: str | None = None
    profile_flag: str | None = None
    identity_flag: str | None = None

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
        return validate.profile(value, source="--profile" if self.profile_flag else ENV_PROFILE)

    def profile(self) -> dict[str, str]:
        """The chosen (or first) section of the Rescale CLI's apiconfig; empty when none."""
        path = paths.rescale_cli_config()
        parser = configparser.RawConfigParser()
        try:
            with open(path, encoding="utf-8") as handle:
                parser.read_file(handle)
        except FileNotFoundError:
            parser = configparser.RawConfigParser()
        except (OSError, UnicodeDecodeError, configparser.Error) as exc:
            raise ConfigError(f"cannot read {path}: {type(exc).__name__}",
                              "fix or remove the file, or set RESCALE_API_KEY") from None
        name = self.profile_name
        if name is not None:
            if not parser.has_section(name):
                raise UsageError(
                    f"profile {name!r} is not in {path}",
                    f"profiles there: {', '.join(parser.sections()) or 'none'}",
                )
            return dict(parser.items(name))
        sections = parser.sections()
        return dict(parser.items(sections[0])) if sections else {}

    def platform(self) -> str:
        """The platform base URL, e.g. ``https://platform.rescale.com`` (no trailing slash)."""
        if self.platform_flag:
            return normalize_platform(self.platform_flag, source="--platform")
        env = os.environ.get(ENV_PLATFORM)
        if env:
            return normalize_platform(env, source=ENV_PLATFORM)
        configured = self.profile().get("apibaseurl")
        if configured:
            source = f"apibaseurl in {paths.rescale_cli_config()}"
            return normalize_platform(configured, source=source, in_file=True)
        return DEFAULT_PLATFORM

    def api_key(self) -> str:
        key = os.environ.get(ENV_API_KEY, "").strip() or self.profile().get("apikey", "").strip()
        if not key:
            raise AuthError(
                "no Rescale API key",
                "run `rescale-ssh login`, set RESCALE_API_KEY, or use `add JOB --from-log` "
                "with the line from the job's logs",
            )
        if any(ord(c) < 33 or ord(c) > 126 for c in key):
            raise AuthError("the Rescale API key contains spaces or control characters",
                            "copy the key again from Settings → API")
        if len(key) > MAX_API_KEY:
            raise AuthError(f"the Rescale API key is longer than {MAX_API_KEY} characters",
                            "copy the key again from Settings → API")
        return key


class ClientLimits(TypedDict):
    deadline: float
    connect_timeout: float
    read_timeout: float


def client_limits(default: float) -> ClientLimits:
    """Time limits for a platform client whose requests must each end within
    :func:`request_deadline`: an attempt gets at most a third of it, so a stalled one leaves
    room for retries (60 s: 5 s to connect, 20 s to read, as the client's own defaults)."""
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
    """A region name or URL → base URL. Accepts a full ``.../api/v3/`` URL (older tools).

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
    parts = urlsplit(value)
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
