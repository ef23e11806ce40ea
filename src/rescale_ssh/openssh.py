"""Which OpenSSH client runs here, and whether rescale-ssh may write for it.

The minimum is 7.6 (October 2017): ``StrictHostKeyChecking accept-new`` arrived then, and an
older ssh stops with "unsupported option" on that line for *every* host, even inside a block
that does not apply (readconf.c parses values of inactive lines too). 7.4 (RHEL/CentOS 7) also
matches negated ``originalhost`` patterns wrongly. So ``add``, ``sync`` and ``install`` refuse
to write anything below 7.6, and ``doctor`` fails there. What the user's own file holds (the
static blocks, ``Host *``, one ``Include``) is read by OpenSSH 7.3 and newer; ``accept-new`` and
the hook's Match live in the tool's own file (included.py). See README, "OpenSSH versions".
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from rescale_ssh import programs
from rescale_ssh.errors import ConfigError, ProgramError

MINIMUM = (7, 6)
# Connection sharing (mux.py) from 7.8 on: before, a ControlPersist master kept the stderr of
# the ssh that started it, so `out=$(ssh rescale-X cmd 2>&1)` or a program capturing ssh's
# stderr waited until the master ended (OpenSSH bz#1988; ssh.c 1.490, July 2018, sends it to
# /dev/null).
SHARING = (7, 8)
_BANNER = re.compile(r"OpenSSH_(?:for_Windows_)?(\d+)\.(\d+)(p\d+)?")


@dataclass(frozen=True)
class Client:
    path: str
    version: tuple[int, int] | None  # None: not OpenSSH, or it did not say
    banner: str

    @property
    def shown(self) -> str:
        if self.version is None:
            return self.banner[:60] or "an unknown ssh"
        return f"OpenSSH {self.version[0]}.{self.version[1]}"

    @property
    def supported(self) -> bool:
        return self.version is None or self.version >= MINIMUM


def parse(banner: str) -> tuple[int, int] | None:
    found = _BANNER.search(banner)
    return (int(found.group(1)), int(found.group(2))) if found else None


def client() -> Client | None:
    """The ssh on PATH and what ``ssh -V`` says of itself; None when there is no ssh. Asked
    once per ssh program and process: a command that writes the config asks several times
    (the version check, connection sharing), under the config's lock."""
    path = programs.which("ssh")
    if path is None:
        return None
    return _client(path)


@functools.lru_cache(maxsize=8)
def _client(path: str) -> Client:
    proc = programs.run([path, "-V"], timeout=10)
    banner = " ".join((proc.stderr.strip() or proc.stdout.strip()).splitlines())
    return Client(path=path, version=parse(banner), banner=banner)


def shares_connections() -> bool:
    """The ssh on PATH is an OpenSSH of :data:`SHARING` or newer (False when unknown)."""
    try:
        found = client()
    except ProgramError:
        return False
    return found is not None and found.version is not None and found.version >= SHARING


def too_old() -> bool:
    """The ssh on PATH is an OpenSSH older than :data:`MINIMUM` (False when unknown)."""
    try:
        found = client()
    except ProgramError:
        return False
    return found is not None and not found.supported


def require_supported(action: str) -> None:
    """Refuse to write a config the installed ssh would refuse to read.

    No ssh on PATH (the config may be for another machine), or one that is not OpenSSH, is not
    an obstacle: nothing here would know better."""
    try:
        found = client()
    except ProgramError:
        return
    if found is None or found.supported:
        return
    assert found.version is not None
    raise ConfigError(
        f"cannot {action}: {found.path} is {found.shown}, and rescale-ssh needs OpenSSH "
        f"{MINIMUM[0]}.{MINIMUM[1]} or newer (StrictHostKeyChecking accept-new, which an older "
        "ssh refuses for every host); nothing was changed",
        "upgrade OpenSSH's client (`ssh -V` shows its version), or put a newer ssh first on "
        "PATH",
    )
