"""Who the API key belongs to (``GET /api/v2/users/me/``), remembered for a day.

``jobs`` needs it to tell the user's own jobs from the ones shared with them: the job list gives
each job's ``owner`` (an email address) and ``sharedWith``, and no "shared" flag. The answer is
kept in the state folder, file ``me`` (0600, folder 0700): the platform, a fingerprint of the
key, the username and email, and when they were asked. The fingerprint (16 hex digits of a
SHA-256 of platform and key) makes another key, or another platform, ask again instead of
reading someone else's names; the key itself is never written. After :data:`MAX_AGE` the
platform is asked again. Failing to ask is no error: ``jobs`` then tells shared jobs by
``sharedWith`` alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from dataclasses import dataclass

from rescale_ssh import paths, store, validate
from rescale_ssh.errors import RescaleSSHError
from rescale_ssh.platform.client import Client

ME = "/api/v2/users/me/"
FILE = "me"
MAX_AGE = 24 * 3600.0  # a user's name and email change rarely; one request a day at most
KEYS = frozenset({"platform", "key", "username", "email", "checked"})


@dataclass(frozen=True)
class Me:
    username: str | None
    email: str | None

    def owns(self, owner: object) -> bool | None:
        """Whether ``owner`` (a job's ``owner``: an email address, a username, or an object
        with either) is this user; None when either side names no one."""
        mine = {name for name in map(_folded, (self.username, self.email)) if name}
        theirs = _names(owner)
        if not mine or not theirs:
            return None
        return bool(mine & theirs)


def _names(owner: object) -> set[str]:
    if isinstance(owner, dict):
        return {name for key in ("email", "username") if (name := _folded(owner.get(key)))}
    name = _folded(owner)
    return {name} if name else set()


def _folded(value: object) -> str | None:
    text = _text(value)
    return text.casefold() if text else None


def fingerprint(platform: str, api_key: str) -> str:
    digest = hashlib.sha256(f"rescale-ssh users/me\0{platform}\0{api_key}".encode())
    return digest.hexdigest()[:16]


def cache_path() -> str:
    return os.path.join(str(paths.state_dir()), FILE)


def lookup(client: Client, api_key: str, *, max_age: float = MAX_AGE) -> Me | None:
    """The key's user: from the cache when it is younger than ``max_age`` and was asked with
    this key of this platform, else from the platform (and then cached). None when the
    platform does not say."""
    path = cache_path()
    key = fingerprint(client.base_url, api_key)
    cached = _read(path, client.base_url, key, max_age)
    if cached is not None:
        return cached
    try:
        body = client.get(ME, what="your account")
    except RescaleSSHError:
        return None
    if not isinstance(body, dict):
        return None
    found = Me(_text(body.get("username")), _text(body.get("email")))
    if found.username is None and found.email is None:
        return None
    record = {"platform": client.base_url, "key": key, "username": found.username or "",
              "email": found.email or "", "checked": str(int(time.time()))}
    with contextlib.suppress(OSError):  # a read-only state folder: ask again next time
        store.write_atomic(path, store.format_record(record), durable=False)
    return found


def _read(path: str, platform: str, key: str, max_age: float) -> Me | None:
    record = store.read_record(path, KEYS)
    if not record or store.UNEXPECTED in record or store.UNREADABLE in record:
        return None
    if record.get("platform") != platform or record.get("key") != key:
        return None
    try:
        age = time.time() - int(record.get("checked", ""))
    except ValueError:
        return None
    if not -60 <= age <= max_age:  # a clock set back by more than a minute: ask again
        return None
    found = Me(_text(record.get("username")), _text(record.get("email")))
    return found if found.username or found.email else None


def _text(value: object) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    return validate.shown(value.strip(), 120)
