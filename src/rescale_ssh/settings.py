"""Settings: each a flag and an environment variable (the flag wins), then a default.

The API key is never a flag (it would show in ``ps``): ``RESCALE_API_KEY``, else the profile's
``apikey`` in the Rescale CLI's ``~/.config/rescale/apiconfig``.
"""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from rescale_ssh import paths, validate
from rescale_ssh.errors import AuthError, ConfigError, UsageError

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
        return Path(os.path.abspath(os.path.expanduser(value)))

    @property
    def identity(self) -> str:
        value = self.identity_flag or os.environ.get(ENV_IDENTITY)
        path = os.path.abspath(os.path.expanduser(value)) if value else str(
            paths.default_identity()
        )
        source = "--identity" if self.identity_flag else (ENV_IDENTITY if value else None)
        return validate.local_path(path, field="identity file", source=source)

    @property
    def known_hosts(self) -> str:
        return validate.local_path(str(paths.known_hosts()), field="known_hosts file")

    @property
    def profile_name(self) -> str | None:
        return self.profile_flag or os.environ.get(ENV_PROFILE) or None

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
            return normalize_platform(configured, source="apibaseurl in the Rescale CLI profile")
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
        return key


def normalize_platform(value: str, *, source: str) -> str:
    """A region name or URL → base URL. Accepts a full ``.../api/v3/`` URL (older tools)."""
    value = value.strip()
    if value.lower() in REGIONS:
        return REGIONS[value.lower()]
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or "@" in parts.netloc:
        raise UsageError(
            f"invalid platform {value!r} from {source}",
            f"use a URL like {DEFAULT_PLATFORM} or a region: {', '.join(REGIONS)}",
        )
    path = parts.path.rstrip("/")
    for suffix in ("/api/v2", "/api/v3", "/api"):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
            break
    return f"{parts.scheme}://{parts.netloc}{path}"
