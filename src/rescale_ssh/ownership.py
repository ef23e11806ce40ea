"""Who may own what ssh reads or runs for us, checked the way ssh checks its own files.

ssh reads the files our Include names for every host, and stops for every host when one is
owned by another user, writable by group or others (readconf.c: "Bad owner or permissions"),
or cannot be read ("Can't open user config file"); it runs the hook script from our folder. So
the state folder, each file and folder in it that ssh reads or runs (the included files, the
script, hook.conf, known_hosts, the records and markers, the locks), must be the user's own and
writable by nobody else. Each folder above the state folder must be the user's or root's, and
writable by nobody else unless it is sticky (``/tmp``): no one else can then rename our folder.

``problems`` says what is wrong, each with the path and the fix; the hook and every command
refuse to go on while there is one (doctor names it). Run as root on files another user owns
(``sudo`` keeping that user's HOME), :func:`foreign_owner` tells: what root writes there would
be root's, and the user's ssh would stop at it.

On Windows (no uids, and modes that are only the read-only bit) only the link rule applies:
whatever ssh there reads is the user's business and their ACLs'.

Standard library only (os, stat): the hook's cold path checks the folder it writes in.
"""

from __future__ import annotations

import os
import stat

from rescale_ssh import posix
from rescale_ssh.errors import ConfigError

# Not ``from typing import TYPE_CHECKING``: typing costs the hook ~10 ms (mypy knows the name).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

# What ssh reads or runs for us, in the state folder (included.py, hookconf.py, blockfile.py).
FILES = ("ssh.conf", "fresh.conf", "broken.conf", "hosts.conf", "hook", "hook.conf",
         "known_hosts")
FOLDERS = ("jobs", "live", "locks", "hosts", "failed")


class Problem:
    __slots__ = ("fix", "path", "reason")

    def __init__(self, path: str, reason: str, fix: str) -> None:
        self.path = path
        self.reason = reason
        self.fix = fix

    @property
    def message(self) -> str:
        return f"{self.path} {self.reason}"

    def __repr__(self) -> str:
        return f"Problem({self.path!r}, {self.reason!r})"


def _who(uid: int) -> str:
    found = posix.account(uid)
    return f"uid {uid}" if found is None else f"{found.name} (uid {uid})"


def _writable_by_others(st: os.stat_result) -> bool:
    return bool(st.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


def entry_problem(path: str, uid: int | None, *, inside_ours: bool) -> Problem | None:
    """What is wrong with one file or folder of ours (``None``: nothing, or it is not there).
    ``inside_ours``: it sits in a folder of the user's, who can remove it whoever owns it.
    ``uid`` None (Windows): only whether it is a link."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return Problem(path, "is a symbolic link (rescale-ssh never makes one there)",
                       f"remove it (`rm {path}`), then run `rescale-ssh install` again")
    if uid is None:
        return None
    if st.st_uid != uid:
        how = "`sudo rm -rf`" if st.st_uid == 0 else "`rm -rf`"
        return Problem(path, f"is owned by {_who(st.st_uid)}, not by you ({_who(uid)})",
                       f"remove it ({how} {path}), then run `rescale-ssh install` again"
                       if inside_ours else
                       f"set XDG_STATE_HOME to a folder of your own, or remove {path} "
                       "(with sudo if need be), then run `rescale-ssh install` again")
    if _writable_by_others(st):
        return Problem(path, f"is writable by group or others (mode "
                       f"{stat.S_IMODE(st.st_mode):04o})", f"run `chmod go-w {path}`")
    return None


def _above(state_dir: str) -> list[str]:
    """The folders above the state folder, both as written (ssh uses that path: a link on it
    sits in a folder that must be safe too) and as resolved."""
    folders: list[str] = []
    for start in (os.path.abspath(state_dir), os.path.realpath(state_dir)):
        folder = os.path.dirname(start)
        while folder not in folders:
            folders.append(folder)
            parent = os.path.dirname(folder)
            if parent == folder:
                break
            folder = parent
    return folders


def parent_problem(state_dir: str, uid: int | None) -> Problem | None:
    """A folder above the state folder that someone else could use to swap ours (not asked
    on Windows: ``uid`` None)."""
    if uid is None:
        return None
    for folder in _above(state_dir):
        found = _folder_problem(folder, state_dir, uid)
        if found is not None:
            return found
    return None


def _folder_problem(folder: str, state_dir: str, uid: int) -> Problem | None:
    try:
        st = os.stat(folder)
    except OSError:
        return None
    sticky = bool(st.st_mode & stat.S_ISVTX)
    if _private_group(st, uid) and not st.st_mode & stat.S_IWOTH:
        sticky = True  # group-writable by the user's own group (user private groups)
    if st.st_uid not in (uid, 0):
        return Problem(folder, f"(above the state folder {state_dir}) is owned by "
                       f"{_who(st.st_uid)}: that user can replace what ssh runs for you",
                       "set XDG_STATE_HOME to a folder of your own, then run "
                       "`rescale-ssh install` again")
    if _writable_by_others(st) and not sticky:
        return Problem(folder, f"(above the state folder {state_dir}) is writable by "
                       f"group or others (mode {stat.S_IMODE(st.st_mode):04o}): they can "
                       "replace what ssh runs for you",
                       f"run `chmod go-w {folder}`, or set XDG_STATE_HOME to a folder of "
                       "your own")
    return None


def problems(state_dir: str, uid: int | None = None, *, records: bool = True
             ) -> list[Problem]:
    """Everything wrong with the state folder and what ssh reads or runs from it (``uid``:
    the effective one by default; on Windows there is none, and only links are refused)."""
    uid = posix.euid() if uid is None else uid
    if not os.path.lexists(state_dir):
        missing = parent_problem(state_dir, uid)
        return [missing] if missing else []
    top = entry_problem(state_dir, uid, inside_ours=False)
    if top is not None and "symbolic link" in top.reason:
        top = None if _link_is_ours(state_dir, uid) else top
    if top is not None:
        return [top]
    found: list[Problem] = []
    above = parent_problem(state_dir, uid)
    if above is not None:
        found.append(above)
    for name in FILES:
        one = entry_problem(os.path.join(state_dir, name), uid, inside_ours=True)
        if one is not None:
            found.append(one)
    for name in FOLDERS:
        folder = os.path.join(state_dir, name)
        one = entry_problem(folder, uid, inside_ours=True)
        if one is not None:
            found.append(one)
            continue
        if not records or not os.path.isdir(folder):
            continue
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for entry in names:
            inner = entry_problem(os.path.join(folder, entry), uid, inside_ours=True)
            if inner is not None:
                found.append(inner)
    return found


def _private_group(st: os.stat_result, uid: int) -> bool:
    """The folder's group is the user's own private group (named after them, no members
    listed): a group-writable home (0775, as some distributions make them) is theirs alone."""
    user, group = posix.account(uid), posix.group(st.st_gid)
    if user is None or group is None:
        return False
    name, members = group
    if st.st_gid != user.gid or name != user.name or \
            [member for member in members if member != user.name]:
        return False
    # An account whose primary group it is is not listed in gr_mem (useradd -g alice svc).
    everyone = posix.accounts() or []
    return not any(entry.gid == st.st_gid and entry.uid != uid for entry in everyone)


def _link_is_ours(path: str, uid: int | None) -> bool:
    """A state folder the user made a symbolic link to a folder of theirs (dotfiles do; on
    Windows, which has no owners to compare, any link the user made there)."""
    if uid is None:
        return True
    try:
        return os.lstat(path).st_uid == uid and os.stat(path).st_uid == uid and \
            not _writable_by_others(os.stat(path))
    except OSError:
        return False


def foreign_owner(*paths: str) -> int | None:
    """Run as root: the uid of another user who owns the nearest existing of ``paths`` (or of
    a folder above it), when there is one. None when we are not root, or they are root's."""
    if not posix.is_root():
        return None
    for path in paths:
        current = os.path.abspath(path)
        while not os.path.lexists(current):
            parent = os.path.dirname(current)
            if parent == current:
                break
            current = parent
        try:
            owner = os.stat(current).st_uid
        except OSError:
            continue
        if owner != 0:
            return owner
    return None


def describe(uid: int) -> str:
    return _who(uid)


# -- the user's ssh config, held to ssh's own rule before we write it -------------------------


def check_secure(path: Path) -> None:
    """Refuse a file, or the folder it is in, that other users may change.

    ssh's own rule for a config (readconf.c): writable by group or others, or owned by someone
    other than the user or root, is "Bad owner or permissions"; Debian's and Ubuntu's ssh allow
    the owner's private group (user-group-modes.patch: umask 002 makes configs 0664 there). The
    folder is held to the same rule: whoever may write it can swap the file. Root may manage
    another user's file (the owner is kept), so the owner is checked only for other users.
    Not on Windows: modes there are only the read-only bit, and access is by ACLs.
    """
    from pathlib import Path  # not on the hook's warm path, which reads this module

    if not posix.modes_apply():
        return
    target = Path(os.path.realpath(path))
    for item, what in ((target, "file"), (target.parent, "folder")):
        try:
            info = item.stat()
        except (FileNotFoundError, NotADirectoryError):
            continue
        if what == "folder":
            name = f"its folder {item}"
        else:
            name = "the file" if item == Path(os.path.abspath(path)) else f"its target {item}"
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o002 or (mode & 0o020 and not ssh_private_group(info.st_uid, info.st_gid)):
            who = {0o020: "its group", 0o002: "other users"}.get(mode & 0o022,
                                                               "its group and other users")
            raise ConfigError(
                f"refusing to change {path}: {name} is writable by {who} (mode {mode:04o}); "
                "ssh refuses a config others can change too (Bad owner or permissions)",
                f"run `chmod go-w {item}`, then run the command again",
            )
        uid = posix.uid()
        if uid is not None and uid != 0 and info.st_uid not in (0, uid):
            raise ConfigError(
                f"refusing to change {path}: {name} belongs to another user (uid {info.st_uid}); "
                "ssh refuses such a config too (Bad owner or permissions)",
                "keep your ssh config in a file and folder of your own, such as ~/.ssh/config",
            )


def ssh_private_group(uid: int, gid: int) -> bool:
    """Group ``gid`` is user ``uid``'s alone: no one else has it as their primary group or is
    listed in it, and the user is (Debian's user-group-modes.patch, secure_permissions)."""
    found, user, everyone = posix.group(gid), posix.account(uid), posix.accounts()
    if found is None or user is None or everyone is None:
        return False
    members = found[1]
    primary = [entry.uid for entry in everyone if entry.gid == gid]
    if any(other != uid for other in primary) or members not in ([], [user.name]):
        return False
    return bool(primary or members)
