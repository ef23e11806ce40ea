"""Every call that only POSIX systems have, in one place, each with what Windows does instead.

The commands other than ``install``/``hook`` run on Windows' own Python (README, Windows), which
has no uid, no passwd or group database, no flock, no fork, no O_NOFOLLOW, and whose
``os.kill(pid, 0)`` ends the process instead of asking whether it lives. No other module of the
package names one of these (tests/test_windows_safety.py walks them all): they ask here, and get
the POSIX answer byte for byte, or on Windows a safe stand-in (None, no-op, False) that the
caller treats as "cannot be known here".

The checks are ``sys.platform == "win32"`` written out in each function, which mypy understands
(``mypy --platform win32`` then checks the Windows side). Standard library only and cheap to
import (the hook reads it): os and sys, nothing else at import time; fcntl, pwd, grp,
resource, ctypes and _socket load only in the function that needs them.
"""

from __future__ import annotations

import os
import sys

# Open flags Windows lacks (0 there: not asked for). Links on Windows need privileges to make;
# ownership.py still refuses one where a file of ours should be.
NOFOLLOW: int = getattr(os, "O_NOFOLLOW", 0)
CLOEXEC: int = getattr(os, "O_CLOEXEC", 0)
DIRECTORY: int = getattr(os, "O_DIRECTORY", 0)
NONBLOCK: int = getattr(os, "O_NONBLOCK", 0)


def windows() -> bool:
    return sys.platform == "win32"


def modes_apply() -> bool:
    """File modes mean what they say (POSIX); on Windows ``st_mode`` shows only the read-only
    bit (0o666 or 0o444) and access is by ACLs, which this tool does not read."""
    return sys.platform != "win32"


# -- who we are -------------------------------------------------------------------------------

def uid() -> int | None:
    """The real user ID; None on Windows (no uids: ownership rules are skipped there)."""
    if sys.platform == "win32" or not hasattr(os, "getuid"):
        return None
    return os.getuid()


def euid() -> int | None:
    """The effective user ID; None on Windows."""
    if sys.platform == "win32" or not hasattr(os, "geteuid"):
        return None
    return os.geteuid()


def is_root() -> bool:
    return euid() == 0


class Account:
    """One passwd entry: the fields this tool reads."""

    __slots__ = ("gid", "home", "name", "uid")

    def __init__(self, name: str, uid: int, gid: int, home: str) -> None:
        self.name = name
        self.uid = uid
        self.gid = gid
        self.home = home


def account(user: int) -> Account | None:
    """The passwd entry of uid ``user``; None when there is none (or no passwd: Windows)."""
    if sys.platform == "win32":
        return None
    try:
        import pwd

        entry = pwd.getpwuid(user)
    except (ImportError, KeyError):
        return None
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir)


def accounts() -> list[Account] | None:
    """Every passwd entry; None where there is no passwd database."""
    if sys.platform == "win32":
        return None
    try:
        import pwd
    except ImportError:
        return None
    return [Account(e.pw_name, e.pw_uid, e.pw_gid, e.pw_dir) for e in pwd.getpwall()]


def group(gid: int) -> tuple[str, list[str]] | None:
    """The name and listed members of group ``gid``; None when unknown (or Windows)."""
    if sys.platform == "win32":
        return None
    try:
        import grp

        entry = grp.getgrgid(gid)
    except (ImportError, KeyError):
        return None
    return entry.gr_name, list(entry.gr_mem)


def passwd_home() -> str:
    """The home folder as ssh finds it: the passwd entry's (ssh ignores $HOME); on Windows
    the profile folder (Windows' OpenSSH reads %USERPROFILE%\\.ssh\\config)."""
    if sys.platform == "win32":
        return os.environ.get("USERPROFILE") or os.path.expanduser("~")
    import pwd

    return pwd.getpwuid(os.getuid()).pw_dir


# -- files ------------------------------------------------------------------------------------

def fchmod(fd: int, mode: int) -> None:
    """os.fchmod; on Windows (no fchmod before Python 3.13, and modes are only the read-only
    bit) nothing: the file keeps the mode it was made with."""
    if sys.platform == "win32" or not hasattr(os, "fchmod"):
        return
    os.fchmod(fd, mode)


def fchown(fd: int, owner: int, grp_id: int) -> None:
    """os.fchown; nothing on Windows (no owners to keep)."""
    if sys.platform == "win32" or not hasattr(os, "fchown"):
        return
    os.fchown(fd, owner, grp_id)


def has_flock() -> bool:
    """flock(2) exists here; on Windows store.Locked uses its O_EXCL claim file instead."""
    if sys.platform == "win32":
        return False
    try:
        import fcntl  # noqa: F401 - only whether it is there
    except ImportError:
        return False
    return True


def flock(fd: int) -> None:
    """An exclusive flock(2) without waiting: BlockingIOError when another holds it, OSError
    when the file system has none (store.NO_FLOCK). Never called where has_flock() is False."""
    if sys.platform == "win32":
        raise OSError(38, "no flock on Windows")  # ENOSYS
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def unlock(fd: int) -> None:
    if sys.platform == "win32":
        return
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_UN)


def lease_refused(path: str) -> bool:
    """Linux: a read lease on ``path`` is refused (fcntl(2) F_SETLEASE fails with EAGAIN), so
    another process holds it open for writing. False where this cannot be known (another
    system, a network file system, not the owner, not the main thread)."""
    if not sys.platform.startswith("linux"):
        return False
    import contextlib
    import errno
    import fcntl
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return False  # signal handlers can only be set there (see below)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return False
    # While the lease is held, another process opening the file for writing sends us SIGIO,
    # whose default action ends the process: ignore it for these few microseconds.
    previous = signal.signal(signal.SIGIO, signal.SIG_IGN)
    try:
        fcntl.fcntl(fd, _F_SETLEASE, fcntl.F_RDLCK)
    except OSError as exc:
        return exc.errno == errno.EAGAIN
    else:
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, _F_SETLEASE, fcntl.F_UNLCK)
        return False
    finally:
        os.close(fd)
        signal.signal(signal.SIGIO, previous)


_F_SETLEASE = 1024  # linux/fcntl.h (F_LINUX_SPECIFIC_BASE + 0)
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2  # linux/fs.h
_RENAME_SWAP = 0x2  # macOS sys/stdio.h


def rename_exchange(first: str, second: str) -> int | None:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE, macOS renamex_np
    RENAME_SWAP): 0 when done, else the errno; None where this system has no such call
    (Windows, other systems, a libc that cannot be loaded)."""
    if sys.platform == "win32":  # CDLL(None) is no libc there (and raises TypeError)
        return None
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:  # pragma: no cover - a libc that cannot be loaded
        return None
    a, b = os.fsencode(first), os.fsencode(second)
    result: int
    if sys.platform.startswith("linux") and hasattr(libc, "renameat2"):
        result = libc.renameat2(_AT_FDCWD, a, _AT_FDCWD, b, _RENAME_EXCHANGE)
    elif sys.platform == "darwin" and hasattr(libc, "renamex_np"):
        result = libc.renamex_np(a, b, _RENAME_SWAP)
    else:
        return None
    return 0 if result == 0 else ctypes.get_errno()


# -- processes --------------------------------------------------------------------------------

def host_name() -> str:
    if sys.platform == "win32" or not hasattr(os, "uname"):
        return os.environ.get("COMPUTERNAME", "")
    return os.uname().nodename


def alive(pid: int) -> bool:
    """Process ``pid`` exists on this host. On Windows ``os.kill(pid, 0)`` would terminate it
    (any signal but the two console events is TerminateProcess): it is asked with
    OpenProcess/GetExitCodeProcess instead, and taken for alive when that cannot be asked."""
    if sys.platform == "win32":
        return _alive_windows(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # someone else's process (EPERM): alive
    return True


def _alive_windows(pid: int) -> bool:  # pragma: no cover - exercised on Windows only
    if sys.platform != "win32":
        return True
    try:
        import ctypes

        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    except (ImportError, AttributeError, OSError):
        return True  # cannot tell: never take a live process's lock
    query_limited_information, still_active, invalid_parameter = 0x1000, 259, 87
    handle = kernel32.OpenProcess(query_limited_information, False, pid)
    if not handle:
        return bool(ctypes.get_last_error() != invalid_parameter)
    try:
        code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True
        return code.value == still_active
    finally:
        kernel32.CloseHandle(handle)


def fork() -> int | None:
    """os.fork; None where there is none (Windows): the caller does the work later instead.
    OSError when no process can be made."""
    if sys.platform == "win32" or not hasattr(os, "fork"):
        return None
    return os.fork()


def can_fork() -> bool:
    return sys.platform != "win32" and hasattr(os, "fork")


def new_session() -> None:
    """os.setsid (in a forked child: detached from ssh's terminal and process group)."""
    if sys.platform == "win32" or not hasattr(os, "setsid"):
        return
    os.setsid()


def ending_signals() -> tuple[int, ...]:
    """The signals besides SIGINT that end a foreground command: SIGTERM, and SIGHUP (its
    terminal closed) where there is one."""
    import signal

    if sys.platform == "win32":
        return (signal.SIGTERM,)
    return (signal.SIGTERM, signal.SIGHUP)


def no_core_limit() -> None:
    """RLIMIT_CORE 0, soft and hard; nothing where there is no such limit (Windows)."""
    if sys.platform == "win32":
        return
    import contextlib

    try:
        import resource
    except ImportError:
        return
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


_PR_SET_DUMPABLE = 4


def not_dumpable() -> None:
    """Linux: prctl(PR_SET_DUMPABLE, 0); nothing elsewhere."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
    except (OSError, AttributeError):
        pass


# -- sockets ----------------------------------------------------------------------------------

def can_pass_fds() -> bool:
    """Descriptors can be passed over a Unix socket (SCM_RIGHTS); not on Windows, where the
    proxy relays instead (ProxyUseFdpass is not there either)."""
    if sys.platform == "win32":
        return False
    import _socket

    return hasattr(_socket, "SCM_RIGHTS")


def send_fd(channel_fd: int, fd: int) -> None:
    """Pass descriptor ``fd`` over the Unix socket ``channel_fd`` (a copy of it is used):
    socket.send_fds, without the socket module (it imports enum, selectors: ~6 ms). Never
    called where can_pass_fds() is False."""
    if sys.platform == "win32":
        raise OSError(38, "no descriptor passing on Windows")  # ENOSYS
    import _socket

    channel = _socket.socket(fileno=os.dup(channel_fd))
    try:
        # One byte of data, the descriptor as a C int.
        rights = fd.to_bytes(4, sys.byteorder, signed=True)
        channel.sendmsg([b"\0"], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights)])
    finally:
        channel.close()
