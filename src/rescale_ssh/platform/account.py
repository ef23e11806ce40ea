"""The Rescale account: check an API key (``users/me``), store it (login), drop it (logout).

The key goes to the platform in the ``Authorization`` header and to the Rescale CLI's
apiconfig file (0600), nowhere else: never into a message, a log line or a command line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from rescale_ssh import validate
from rescale_ssh.errors import AuthError, UsageError
from rescale_ssh.platform import apiconfig
from rescale_ssh.settings import (
    DEFAULT_PLATFORM,
    ENV_API_KEY,
    Settings,
    normalize_platform,
    profile_platform,
)

ME = "/api/v2/users/me/"


@dataclass(frozen=True)
class Account:
    username: str | None
    email: str | None
    platform: str
    key_source: str  # "RESCALE_API_KEY", or "profile [default] of <path>"
    key_note: str | None = None  # why that profile, when it is not the one asked for

    @property
    def name(self) -> str:
        if self.username and self.email:
            return f"{self.username} ({self.email})"
        return self.username or self.email or "an account with no name"


@dataclass(frozen=True)
class LoginResult:
    account: Account
    path: Path
    section: str
    env_key_wins: bool  # RESCALE_API_KEY is set and is used instead of the stored key
    # The section read until now instead of [default] (a file of rescale-ssh 0.1.0): it stays
    # as it was, and [default], written now, is read from now on.
    replaced_fallback: str | None = None
    # The file read until now, where earlier versions kept it under XDG_CONFIG_HOME: it stays.
    moved_from: Path | None = None


@dataclass(frozen=True)
class LogoutResult:
    path: Path
    section: str | None
    removed: bool
    env_key_set: bool


def check_key_text(api_key: str) -> str:
    """The key without surrounding whitespace; never shown, even when refused."""
    key = api_key.strip()
    if not key:
        raise UsageError("no API key was given",
                         "paste the key from Settings → API in the Rescale web UI at the "
                         "prompt, or, without a terminal, give it on stdin: "
                         "`rescale-ssh login < FILE`")
    if any(ord(c) < 33 or ord(c) > 126 for c in key):
        raise UsageError("the API key contains spaces or control characters",
                         "copy the key again from Settings → API in the Rescale web UI")
    return key


def me(platform: str, api_key: str, *, source: str, note: str | None = None) -> Account:
    """Ask the platform who the key belongs to (``GET /api/v2/users/me/``)."""
    from rescale_ssh.platform.client import Client
    from rescale_ssh.settings import client_limits

    with Client(platform, api_key, retries=2, key_source=source,
                **client_limits(30.0)) as client:
        body = client.get(ME, what="your account")
    if not isinstance(body, dict):
        from rescale_ssh.errors import PlatformError

        raise PlatformError("the platform sent an unexpected answer for your account",
                            "check --platform; report this if it persists")
    return Account(_shown(body.get("username")), _shown(body.get("email")), platform, source,
                   note)


def _shown(value: object) -> str | None:
    """A platform value fit for a terminal: printable, bounded."""
    if not isinstance(value, str) or not value.strip():
        return None
    return validate.shown(value.strip(), 120)


def platform_for_login(settings: Settings, section: str, answer: str | None) -> str:
    """``--platform``/RESCALE_API_URL/RESCALE_API_BASE_URL, else the region typed at the prompt,
    else the platform of the section being written, else (a new ``[default]`` in a file of
    rescale-ssh 0.1.0) that of the section read until now, else North America."""
    if settings.explicit_platform() is not None:
        return settings.platform()
    if answer:
        return normalize_platform(answer, source="the platform prompt")
    return stored_platform(settings, section) or DEFAULT_PLATFORM


def stored_platform(settings: Settings, section: str) -> str | None:
    """The platform the profile file holds for ``section``; for a ``[default]`` not there yet,
    that of the section read until now (a file of rescale-ssh 0.1.0)."""
    if settings.profile_name is None:
        current = settings.profile()  # [default], else the 0.1.0 fallback, else none
        return profile_platform(current) if current.name is not None else None
    if apiconfig.read(settings.profile_path).has(section):
        return profile_platform(settings.profile())
    return None  # a new profile


def login(settings: Settings, api_key: str, *, platform_answer: str | None = None
          ) -> LoginResult:
    """Check the key against the platform, then store it in the Rescale CLI's profile: the
    chosen one, else ``[default]``."""
    key = check_key_text(api_key)
    path = settings.login_path  # a file read from the old XDG place is written here now
    read_until_now = settings.profile_path
    section = apiconfig.section_for(settings.profile_name)
    # Read before the write: which section was read by default until now.
    current = settings.profile() if settings.profile_name is None else None
    platform = platform_for_login(settings, section, platform_answer)
    try:
        account = me(platform, key, source=f"profile [{section}] of {path}")
    except AuthError as error:
        raise AuthError(
            f"{platform} rejected this API key; nothing was stored",
            "copy the key again from Settings → API in the Rescale web UI, and check the "
            "platform (eu, jp, kr, itar, itar-gov have their own keys: --platform REGION)",
        ) from error
    # apibaseurl first, as Rescale's docs show a profile.
    apiconfig.store(path, section, {apiconfig.BASE_URL: platform, apiconfig.API_KEY: key})
    env_key = os.environ.get(ENV_API_KEY, "").strip()
    return LoginResult(account, path, section, env_key_wins=bool(env_key) and env_key != key,
                       replaced_fallback=current.name if current and current.fallback else None,
                       moved_from=read_until_now if read_until_now != path else None)


def logout(settings: Settings) -> LogoutResult:
    """Remove the API key from the profile that is read (the chosen one, else ``[default]``,
    else the first section of a file of rescale-ssh 0.1.0); its other lines stay."""
    env_key_set = bool(os.environ.get(ENV_API_KEY, "").strip())
    path = settings.profile_path
    if not apiconfig.read(path).sections:
        return LogoutResult(path, None, removed=False, env_key_set=env_key_set)
    profile = settings.profile()  # a chosen profile that is missing is an error (a typo?)
    if profile.name is None:
        return LogoutResult(profile.path, None, removed=False, env_key_set=env_key_set)
    removed = apiconfig.remove(profile.path, profile.name, (apiconfig.API_KEY,))
    return LogoutResult(profile.path, profile.name, removed=removed, env_key_set=env_key_set)


def whoami(settings: Settings) -> Account:
    api_key = settings.api_key()
    source, note = key_source(settings)
    return me(settings.platform(), api_key, source=source, note=note)


def key_source(settings: Settings) -> tuple[str, str | None]:
    """Where the API key in use comes from, and why that profile when it was not asked for."""
    if os.environ.get(ENV_API_KEY, "").strip():
        return ENV_API_KEY, None
    profile = settings.profile()
    return profile.describe(), profile.note
