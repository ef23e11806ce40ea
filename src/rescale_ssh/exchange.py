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

import errno
import os

from rescale_ssh import posix

_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV,
                errno.EPERM}


def swap(first: str, second: str) -> bool:
    """Exchange the two paths (both must exist) in one step; False when this system cannot.

    Raises OSError for any other failure (a path that vanished: ENOENT)."""
    code = posix.rename_exchange(first, second)
    if code is None:
        return False
    if code == 0:
        return True
    if code in _UNSUPPORTED:
        return False
    raise OSError(code, os.strerror(code), first)
