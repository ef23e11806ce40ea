"""OpenSSH connection sharing for the jobs: one TCP connection and handshake per job, reused.

Every job alias gets ``ControlMaster auto``, ``ControlPath <state>/%n`` and ``ControlPersist``
(a setting, 5m by default): the first ``ssh`` to a job becomes its master,
later ones (scp, rsync, VS Code's several connections) open a channel on it in about 2 round
trips instead of about 12 (issue 16). What the master's life is tied to:

- The socket is named after the alias (``%n``: the name typed, which matched one of our
  literal aliases), in the state folder itself: a new cluster that reuses an old cluster's
  address has another alias, so it never gets the old job's master; and the folder is the one
  holding ``ssh.conf``, so whenever these lines are read the folder exists (ssh fails, exit 255,
  when it cannot create its socket; verified on 9.2).
- Unix socket paths have a limit (104 bytes on macOS, 108 on Linux) and ssh first binds a
  temporary name 17 bytes longer: an alias whose path would not fit gets no Control lines at
  all (:func:`fits`), since a path that is too long is fatal too.
- A cluster that stops: ``prune``, ``sync``, ``remove`` and the hook (when it learns the job
  ended) tell its masters to exit (:func:`stop`); otherwise the blocks' ``ServerAliveInterval``
  ends a master whose peer vanished within a minute, and a client that met a dead master
  makes a connection of its own (verified on 9.2: "read from master failed", then a new one).
- A socket no master listens on any more is removed by ssh itself (auto mode) on the next
  connection; doctor lists live and stale ones (:func:`survey`).
- Windows' OpenSSH has no connection sharing: no Control lines are written there.

Standard library only (the hook stops masters of jobs that ended).
"""

from __future__ import annotations

import os
import sys

# ControlPersist values are validated with the other values that reach a config (validate.py);
# OFF, the word for no sharing, is what the writers compare with.
from rescale_ssh.validate import OFF as OFF

SOCKET_LIMIT = 104  # sun_path on macOS (108 on Linux): the smaller one, with its NUL
TEMP_SUFFIX = 17  # ssh binds "<ControlPath>.XXXXXXXXXXXXXXXX" first, then links it
STOP_TIMEOUT = 5.0


def supported() -> bool:
    """This machine's OpenSSH shares connections (Windows' port has no ControlMaster)."""
    return sys.platform != "win32"


def socket_path(state_dir: str, alias: str) -> str:
    return os.path.join(state_dir, alias)


def fits(state_dir: str, alias: str) -> bool:
    """ssh can create this alias's socket (and its temporary name) under the state folder."""
    return len(os.fsencode(socket_path(state_dir, alias))) + TEMP_SUFFIX + 1 <= SOCKET_LIMIT


def control_lines(state_dir: str, persist: str, indent: str = "    ") -> list[str]:
    """The options for aliases that :func:`fits`: the state folder holds ``%n``'s socket."""
    from rescale_ssh.sshconfig.hostblock import quote_path

    folder = quote_path(state_dir.rstrip("/") + "/", field="state folder")
    path = folder[:-1] + '%n"' if folder.startswith('"') else folder + "%n"
    return [f"{indent}ControlMaster auto",
            f"{indent}ControlPath {path}",
            f"{indent}ControlPersist {persist}"]


def is_ours(name: str, job: str | None = None) -> bool:
    """A socket name of a job alias: ``rescale-JOB`` or ``rescale-JOB-wN`` (``job``: that job)."""
    import re

    match = re.fullmatch(r"rescale-([A-Za-z0-9]+)(?:-w[0-9]+)?", name)
    return match is not None and (job is None or match.group(1) == job)


def job_of(alias: str) -> str:
    """The job of a socket name :func:`is_ours` accepts (``rescale-JOB[-wN]``)."""
    return alias.split("-")[1]


def sockets(state_dir: str, job: str | None = None) -> list[str]:
    """The paths of the sockets in the state folder named for ``job`` (every job: None)."""
    import stat

    found = []
    try:
        names = os.listdir(state_dir)
    except OSError:
        return []
    for name in sorted(names):
        if not is_ours(name, job):
            continue
        path = os.path.join(state_dir, name)
        try:
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                found.append(path)
        except OSError:
            continue
    return found


def _ssh_option(path: str) -> str:
    value = path.replace("%", "%%")
    return f'ControlPath="{value}"' if any(char.isspace() for char in value) else \
        f"ControlPath={value}"


def control(path: str, command: str, *, ssh: str = "ssh") -> tuple[int, str]:
    """``ssh -O COMMAND`` on one socket, reading no config file (not the user's, so no hook
    runs). Returns ssh's exit status (-1: no ssh, or it hung) and what it said."""
    import subprocess

    alias = os.path.basename(path)
    argv = [ssh, "-F", os.devnull, "-o", _ssh_option(path), "-O", command, alias]
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=STOP_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return -1, str(exc)
    return done.returncode, (done.stderr or done.stdout).strip()


def master_pid(path: str, *, ssh: str = "ssh") -> int | None:
    """The pid of the master listening on ``path`` (``ssh -O check``), None if none is."""
    import re

    code, said = control(path, "check", ssh=ssh)
    match = re.search(r"pid=([0-9]+)", said)
    return int(match.group(1)) if code == 0 and match else None


def stop(state_dir: str, job: str, *, graceful: bool = False, ssh: str = "ssh") -> list[str]:
    """End the masters of ``job`` (``-O exit``; ``graceful``: ``-O stop``, so sessions in use
    finish first) and remove their sockets. Returns the aliases whose master was told."""
    told = []
    for path in sockets(state_dir, job):
        code, _ = control(path, "stop" if graceful else "exit", ssh=ssh)
        if code == 0:
            told.append(os.path.basename(path))
        if not graceful or code != 0:
            _unlink(path)
    return told


def _unlink(path: str) -> None:
    import contextlib

    with contextlib.suppress(OSError):
        os.unlink(path)


class Socket:
    __slots__ = ("alias", "path", "pid")

    def __init__(self, path: str, pid: int | None) -> None:
        self.path = path
        self.alias = os.path.basename(path)
        self.pid = pid

    @property
    def live(self) -> bool:
        return self.pid is not None


def survey(state_dir: str, *, ssh: str = "ssh") -> list[Socket]:
    """Every job socket in the state folder, live (a master answers) or stale."""
    return [Socket(path, master_pid(path, ssh=ssh)) for path in sockets(state_dir)]


def clean(state_dir: str, *, ssh: str = "ssh") -> list[str]:
    """Remove the stale sockets (no master answers); returns their aliases."""
    removed = []
    for found in survey(state_dir, ssh=ssh):
        if not found.live:
            _unlink(found.path)
            removed.append(found.alias)
    return removed
