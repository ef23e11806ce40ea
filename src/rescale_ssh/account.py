"""The Rescale account: check an API key (``users/me``), store it (login), drop it (logout).

The key goes to the platform in the ``Authorization`` header and to the Rescale CLI's
apiconfig file (0600), nowhere else: never into a message, a log line or a command line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from rescale_ssh import apiconfig, paths, validate
from rescale_ssh.errors import AuthError, UsageError
from rescale_ssh.settings import ENV_API_KEY, ENV_PLATFORM, REGIONS, Settings, normalize_platform

ME = "/api/v2/users/me/"


@dataclass(frozen=True)
class Account:
    username: str | None
    email: str | None
    platform: str
    key_source: str  # "RESCALE_API_KEY", or "profile [prod] of <path>"

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
                         "paste the key from Settings → API in the Rescale web UI")
    if any(ord(c) < 33 or ord(c) > 126 for c in key):
        raise UsageError("the API key contains spaces or control characters",
                         "copy the key again from Settings → API in the Rescale web UI")
    return key


def me(platform: str, api_key: str, *, source: str) -> Account:
    """Ask the platform who the key belongs to (``GET /api/v2/users/me/``)."""
    from rescale_ssh.client import Client
    from rescale_ssh.settings import client_limits

    with Client(platform, api_key, retries=2, **client_limits(30.0)) as client:
        body = client.get(ME, what="your account")
    if not isinstance(body, dict):
        from rescale_ssh.errors import PlatformError

        raise PlatformError("the platform sent an unexpected answer for your account",
                            "check --platform; report this if it persists")
    return Account(_shown(body.get("username")), _shown(body.get("email")), platform, source)


def _shown(value: object) -> str | None:
    """A platform value fit for a terminal: printable, bounded."""
    if not isinstance(value, str) or not value.strip():
        return None
    return validate.shown(value.strip(), 120)


def platform_for_login(settings: Settings, section: str, answer: str | None) -> str:
    """``--platform``/RESCALE_API_URL, else the region typed at the prompt, else the section's
    own ``apibaseurl``, else North America."""
    if settings.platform_flag or os.environ.get(ENV_PLATFORM):
        return settings.platform()
    if answer:
        return normalize_platform(answer, source="the platform prompt")
    path = paths.rescale_cli_config()
    if apiconfig.read(path).has(section):
        return Settings(profile_flag=section).platform()
    return REGIONS["us"]


def login(settings: Settings, api_key: str, *, platform_answer: str | None = None
          ) -> LoginResult:
    """Check the key against the platform, then store it in the Rescale CLI's profile."""
    key = check_key_text(api_key)
    path = paths.rescale_cli_config()
    section = apiconfig.section_for(path, settings.profile_name)
    platform = platform_for_login(settings, section, platform_answer)
    try:
        account = me(platform, key, source=f"profile [{section}] of {path}")
    except AuthError as error:
        raise AuthError(
            f"{platform} rejected this API key; nothing was stored",
            "copy the key again from Settings → API in the Rescale web UI, and check the "
            "platform (eu, jp, kr, itar, itar-gov have their own keys: --platform REGION)",
        ) from error
    apiconfig.store(path, section, {apiconfig.API_KEY: key, apiconfig.BASE_URL: platform})
    env_key = os.environ.get(ENV_API_KEY, "").strip()
    return LoginResult(account, path, section, env_key_wins=bool(env_key) and env_key != key)


def logout(settings: Settings) -> LogoutResult:
    """Remove the API key from the chosen (or first) profile; its other lines stay."""
    path = paths.rescale_cli_config()
    profiles = apiconfig.read(path)
    chosen = settings.profile_name
    section = chosen or (profiles.sections[0] if profiles.sections else None)
    env_key_set = bool(os.environ.get(ENV_API_KEY, "").strip())
    if section is None or not profiles.has(section):
        if chosen is not None and profiles.sections:
            raise UsageError(f"profile {chosen!r} is not in {path}",
                             f"profiles there: {', '.join(profiles.sections)}")
        return LogoutResult(path, None, removed=False, env_key_set=env_key_set)
    removed = apiconfig.remove(path, section, (apiconfig.API_KEY,))
    return LogoutResult(path, section, removed=removed, env_key_set=env_key_set)


def whoami(settings: Settings) -> Account:
    api_key = settings.api_key()
    if os.environ.get(ENV_API_KEY, "").strip():
        source = ENV_API_KEY
    else:
        path = paths.rescale_cli_config()
        section = settings.profile_name or next(iter(apiconfig.read(path).sections), "?")
        source = f"profile [{section}] of {path}"
    return me(settings.platform(), api_key, source=source)
