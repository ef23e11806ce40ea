"""Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE, macOS renamex_np RENAME_SWAP).

A rename onto the user's config replaces whatever is there at that instant, even a file an
editor saved a microsecond after our last check (issue 12: a temp-file-and-rename save racing
an add/remove loop lost 2 of 4,000 saves). A swap instead hands back what was replaced, under
the temp name: the writer compares it with what it read and, if another program got there
first, swaps back and starts again from that program's content. Nothing is lost, and the path
always names a whole file.

Where neither call exists or the file system refuses (NFS, some FUSE: EINVAL), :func:`swap`
returns False and the caller renames as before, after one more check.
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2  # linux/fs.h
_RENAME_SWAP = 0x2  # macOS sys/stdio.h
_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV,
                errno.EPERM}


def _libc() -> ctypes.CDLL | None:
    if sys.platform == "win32":  # CDLL(None) is no libc there (and raises TypeError)
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:  # pragma: no cover - a libc that cannot be loaded
        return None


def swap(first: str, second: str) -> bool:
    """Exchange the two paths (both must exist) in one step; False when this system cannot.

    Raises OSError for any other failure (a path that vanished: ENOENT)."""
    libc = _libc()
    if libc is None:
        return False
    a, b = os.fsencode(first), os.fsencode(second)
    if sys.platform.startswith("linux") and hasattr(libc, "renameat2"):
        result = libc.renameat2(_AT_FDCWD, a, _AT_FDCWD, b, _RENAME_EXCHANGE)
    elif sys.platform == "darwin" and hasattr(libc, "renamex_np"):
        result = libc.renamex_np(a, b, _RENAME_SWAP)
    else:
        return False
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in _UNSUPPORTED:
        return False
    raise OSError(code, os.strerror(code), first)
