"""Small tool-owned files: ``key=value`` records, atomic writes, markers, per-name locks.

Standard library only and cheap to import (the ssh hook reads a record on every run): plain
``str`` paths (pathlib imports re, fnmatch and urllib), no json (it imports re), no filelock, no
secrets or tempfile (random names come from ``os.urandom``). Files are created 0600 in folders
created 0700.

Nothing is written through a symbolic link (issue 14): temp files, markers and lock files are
created with ``O_EXCL|O_NOFOLLOW`` under random names, a link at a final name is replaced by the
rename (never written through), and a folder of ours (:data:`OWN_FOLDERS`) that is a link is
refused; files in it are reached through the folder opened with ``O_NOFOLLOW`` (``*at`` calls),
so it cannot be swapped for a link half-way either. The state folder itself may be the user's
own link (dotfiles): ownership.py judges that.

Locks are flock(2); where a file system has none (NFS without lockd: ENOLCK, some FUSE:
EOPNOTSUPP), and on Windows, which has none at all, a lock file made with ``O_EXCL`` stands in
(:class:`Locked`). What only POSIX has is asked through posix.py.
"""

from __future__ import annotations

import errno
import io  # imported at startup anyway (sys.stdout)
import os
import stat

from rescale_ssh import posix
from rescale_ssh.posix import CLOEXEC, NOFOLLOW, NONBLOCK

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW | CLOEXEC
_LINK_ERRNOS = (errno.ELOOP, errno.EMLINK)  # O_NOFOLLOW met a link (EMLINK: FreeBSD)
# The folders rescale-ssh makes in its state folder (ownership.FOLDERS): never a link of ours.
OWN_FOLDERS = frozenset(("jobs", "live", "locks", "hosts", "failed"))
_AT = os.open in os.supports_dir_fd and os.rename in os.supports_dir_fd and \
    os.unlink in os.supports_dir_fd and os.stat in os.supports_dir_fd


def token() -> str:
    """A random part for a file name (os.urandom: the secrets module costs imports)."""
    return os.urandom(6).hex()


def safe_name(prefix: str, name: str) -> str:
    """A file name for ``name`` that stays distinct on case-insensitive file systems (macOS):
    job IDs are case-sensitive, so a checksum of the exact bytes is appended."""
    return f"{prefix}{name}-{crc32(name.encode()):08x}"


def crc32(data: bytes) -> int:
    """``zlib.crc32(data)``, the same value, for the few bytes of a name. Importing zlib loads a
    shared library: about 0.5 ms of every warm hook run, against some 20 µs for this loop over
    a job ID (tests/test_store.py checks it against zlib)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0xEDB88320 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def ensure_dir(path: str) -> str:
    """Create ``path`` as needed; every folder created here, parents included, is 0700
    (``os.makedirs`` would give the parents the umask's mode, e.g. 0755)."""
    missing = []
    folder = path
    while folder and not os.path.isdir(folder):
        missing.append(folder)
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            if os.path.islink(folder) and os.path.basename(folder) in OWN_FOLDERS:
                raise linked_folder(folder) from None  # a dangling one: never made through
            if not os.path.isdir(folder):
                raise
    return path


UNREADABLE = "\0unreadable"
UNEXPECTED = "\0unexpected"  # the first line that is not a key=value line the file may hold


def read_record(path: str, keys: frozenset[str] | None = None) -> dict[str, str] | None:
    """``key=value`` lines, exactly as written by :func:`format_record`: lines end at ``\\n``
    and nothing else is stripped (a ``\\r`` or U+2028 inside a value stays there, to be refused).
    A line that is not ``key=value`` for one of ``keys``, or repeats a key, is reported under
    :data:`UNEXPECTED`: the file was edited by hand or tampered with. A link at ``path`` is
    not followed (:data:`UNREADABLE`): what it points at is no record of ours."""
    try:
        with _open_regular(path) as handle:
            text = handle.read(64 * 1024)
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError):
        return {UNREADABLE: path}
    record: dict[str, str] = {}
    for line in text.split("\n"):
        line = line[:-1] if line.endswith("\r") else line  # a CRLF file (Windows' text mode)
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if sep and key not in record and (keys is None or key in keys):
            record[key] = value
        else:
            record.setdefault(UNEXPECTED, line)
    return record


def format_record(record: dict[str, str]) -> str:
    lines = []
    for key, value in record.items():
        # One line per value: a newline here would forge another key.
        clean = "".join(c if c.isprintable() else " " for c in value)
        lines.append(f"{key}={clean}")
    return "\n".join(lines) + "\n"


def _open_regular(path: str) -> io.TextIOWrapper:
    """``path`` opened for reading as text, unless it is a link (ELOOP) or not a regular file
    (a FIFO would block a reader forever)."""
    fd = os.open(path, os.O_RDONLY | NOFOLLOW | CLOEXEC | NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
        return os.fdopen(fd, encoding="utf-8", newline="")
    except BaseException:
        os.close(fd)
        raise


def _holds(path: str, data: str, mode: int) -> bool:
    try:
        with _open_regular(path) as handle:
            return bool(handle.read() == data and (
                (os.fstat(handle.fileno()).st_mode & 0o777) == mode or not posix.modes_apply()))
    except (OSError, UnicodeDecodeError):
        return False


def linked_folder(folder: str) -> Exception:
    """The error for a folder of ours that is a symbolic link (the words ownership.py uses)."""
    from rescale_ssh.errors import ConfigError

    return ConfigError(f"{folder} is a symbolic link (rescale-ssh never makes one there)",
                       f"remove it (`rm {folder}`), then run `rescale-ssh install` again")


def open_folder(folder: str) -> int | None:
    """A descriptor of ``folder`` for the ``*at`` calls (None where the system has none:
    paths are used then). A folder of ours (:data:`OWN_FOLDERS`) that is a link is refused:
    ConfigError."""
    ours = os.path.basename(folder) in OWN_FOLDERS
    if not _AT:  # pragma: no cover - Windows
        if ours and os.path.islink(folder):
            raise linked_folder(folder)
        return None
    flags = os.O_RDONLY | posix.DIRECTORY | CLOEXEC | (NOFOLLOW if ours else 0)
    try:
        return os.open(folder, flags)
    except OSError as exc:
        if ours and exc.errno in (*_LINK_ERRNOS, errno.ENOTDIR) and os.path.islink(folder):
            raise linked_folder(folder) from None
        raise


class _In:
    """Names in one folder, reached through its descriptor (or by path without one)."""

    __slots__ = ("fd", "folder")

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.fd = open_folder(folder)

    def __enter__(self) -> _In:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)

    def name(self, name: str) -> str:
        return name if self.fd is not None else os.path.join(self.folder, name)

    def create(self, name: str, mode: int = 0o600, flags: int = _CREATE) -> int:
        return os.open(self.name(name), flags, mode, dir_fd=self.fd)

    def lstat(self, name: str) -> os.stat_result:
        return os.stat(self.name(name), dir_fd=self.fd, follow_symlinks=False)

    def unlink(self, name: str) -> None:
        os.unlink(self.name(name), dir_fd=self.fd)

    def replace(self, old: str, new: str) -> None:
        os.replace(self.name(old), self.name(new), src_dir_fd=self.fd, dst_dir_fd=self.fd)

    def temp(self, prefix: str, suffix: str, mode: int = 0o600) -> tuple[int, str]:
        """A new file ``<prefix><random><suffix>``, open for writing: ``O_EXCL|O_NOFOLLOW``,
        so whatever sits at a name (a planted link) is never opened; taken names are skipped."""
        for _ in range(100):
            name = f"{prefix}{token()}{suffix}"
            try:
                return self.create(name, mode), name
            except FileExistsError:
                continue
        raise FileExistsError(errno.EEXIST, "no free temp name", os.path.join(self.folder,
                                                                             prefix))


def create_temp(folder: str, prefix: str, suffix: str, mode: int = 0o600) -> tuple[int, str]:
    """:meth:`_In.temp` for a caller that works with paths (configfile.py): (fd, path)."""
    with _In(folder) as inside:
        fd, name = inside.temp(prefix, suffix, mode)
    return fd, os.path.join(folder, name)


def _full(exc: OSError, folder: str) -> OSError:
    """Name the file in full in an error of an ``*at`` call (messages show the path)."""
    if isinstance(exc.filename, str) and not os.path.isabs(exc.filename):
        exc.filename = os.path.join(folder, exc.filename)
    return exc


def write_atomic(path: str, data: str, *, durable: bool = True, mode: int = 0o600) -> bool:
    """Write ``data`` unless the file already holds exactly that (with ``mode``); True when
    it wrote.

    Readers see the old file or the new one, never a mix (rename). ``durable=False`` skips the
    fsync, for files that are only of use for a minute anyway. The temp file is new
    (:meth:`_In.temp`); a link at ``path`` is replaced, not followed."""
    if _holds(path, data, mode):
        return False
    folder, name = os.path.split(path)
    ensure_dir(folder)
    with _In(folder) as inside:
        fd, tmp = inside.temp(f".{name}.{os.getpid()}.", ".tmp")
        try:
            if mode != 0o600:
                posix.fchmod(fd, mode)
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
                handle.write(data)
                handle.flush()
                if durable:
                    os.fsync(handle.fileno())
            inside.replace(tmp, name)
        except BaseException as exc:
            try:  # noqa: SIM105 - contextlib is one import more on the hook's path
                inside.unlink(tmp)
            except OSError:
                pass
            if isinstance(exc, OSError):
                raise _full(exc, folder) from None
            raise
    return True


def mark(path: str, mtime: float | None = None) -> None:
    """Make sure an empty marker file is at ``path`` (a shell's ``[ -e ]`` finds it), with
    ``mtime`` as its modification time when given. Never made or touched through a link:
    whatever else sits at the name (a link) is taken away first, and the folder is reached
    without following a link (on the warm path: about 4 system calls)."""
    folder, name = os.path.split(path)
    try:
        inside = _In(folder)
    except FileNotFoundError:
        ensure_dir(folder)
        inside = _In(folder)
    with inside:
        for _ in range(3):
            try:
                if stat.S_ISREG(inside.lstat(name).st_mode):
                    break
                inside.unlink(name)
            except FileNotFoundError:
                pass
            try:
                os.close(inside.create(name))
                break
            except FileExistsError:
                continue
        if mtime is not None:
            # A link put there since is touched itself, not what it points at.
            nofollow = os.utime in os.supports_follow_symlinks
            if inside.fd is not None and os.utime in os.supports_dir_fd:
                os.utime(name, (mtime, mtime), dir_fd=inside.fd, follow_symlinks=not nofollow)
            else:  # pragma: no cover - no utimensat
                os.utime(path, (mtime, mtime), follow_symlinks=not nofollow)


def remove(path: str) -> bool:
    """Delete the file; False when it was not there. In a folder of ours that is a link,
    nothing is deleted (ConfigError)."""
    folder, name = os.path.split(path)
    try:
        with _In(folder) as inside:
            inside.unlink(name)
    except FileNotFoundError:
        return False
    return True


# flock(2) errors that mean "no flock here" (not "held by another"): an NFS mount without
# lockd (ENOLCK), file systems without it (EOPNOTSUPP, ENOTSUP; EINVAL, ENOSYS on some FUSE).
NO_FLOCK = frozenset(code for code in (
    errno.ENOLCK, errno.EOPNOTSUPP, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP), errno.EINVAL,
    errno.ENOSYS))
HELD = ".held"  # the lock file that stands in for flock: <lock>.held
STALE_AFTER = 120.0  # seconds: a claim from another host this old is abandoned (no hold of
# a command or a hook run lasts a minute; a sweeper elsewhere that holds its lock longer only
# ends up with a second sweeper, which does no harm)
STALE_HERE_AFTER = 3600.0  # seconds: a claim of a live process here (its pid reused?)
_HALF_MADE = 5.0  # seconds: a claim still empty this long lost its writer


_host = posix.host_name
alive = posix.alive  # (never os.kill(pid, 0): on Windows that ends the process)


class Locked:
    """``with Locked(path, timeout) as got:`` an exclusive lock; ``got`` is False when it was
    not had within ``timeout``.

    A flock(2) on ``path``: flock locks die with their process, so a crashed holder never
    blocks anyone. Where the file system has no flock (:data:`NO_FLOCK`), ``<path>.held`` made
    with ``O_EXCL`` stands in, holding ``pid host time token``; a claim whose process is gone
    (on this host) or older than :data:`STALE_AFTER` is abandoned and taken over. Locks never
    follow a link: one at ``path`` (or at ``<path>.held``) is replaced. Failing both ways:
    ConfigError, naming the lock and why. (Two hosts that mount one share, one with flock and
    one without, do not exclude each other: each sees only its own kind of lock.)"""

    def __init__(self, path: str, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self.fd = -1
        self.held = False
        self.claim = ""  # the text of our <path>.held, when that is the lock we hold
        self.fallback = False

    def __enter__(self) -> bool:
        import time

        self.fallback = self.fallback or not posix.has_flock()  # Windows: the claim file
        folder, name = os.path.split(self.path)
        ensure_dir(folder)
        deadline = time.monotonic() + self.timeout
        try:
            with _In(folder) as inside:
                while True:
                    if self._try(inside, name):
                        return True
                    if time.monotonic() >= deadline:
                        return False
                    time.sleep(0.02)
        except OSError as exc:
            self._close()
            raise self._error(_full(exc, folder)) from None

    def _try(self, inside: _In, name: str) -> bool:
        if not self.fallback:
            if self.fd < 0:
                self.fd = self._open(inside, name)
            try:
                posix.flock(self.fd)
            except BlockingIOError:
                return False
            except OSError as exc:
                if exc.errno not in NO_FLOCK:
                    raise
                self.fallback = True
                self._close()
            else:
                try:
                    same = os.fstat(self.fd).st_ino == inside.lstat(name).st_ino
                except FileNotFoundError:
                    same = False
                if same:
                    self.held = True
                    return True
                self._close()  # replaced while we waited (a link taken away): lock the new one
                return False
        return self._claim(inside, name + HELD)

    @staticmethod
    def _open(inside: _In, name: str) -> int:
        """The lock file, made if need be; a link there is replaced, never followed."""
        for _ in range(3):
            try:
                return inside.create(name, flags=os.O_RDWR | os.O_CREAT | NOFOLLOW | CLOEXEC)
            except OSError as exc:
                if exc.errno not in _LINK_ERRNOS:
                    raise
                inside.unlink(name)
        return inside.create(name, flags=os.O_RDWR | os.O_CREAT | NOFOLLOW | CLOEXEC)

    def _claim(self, inside: _In, held: str) -> bool:
        import time

        text = f"{os.getpid()} {_host()} {time.time():.0f} {token()}\n"
        try:
            fd = inside.create(held)
        except FileExistsError:
            seen = _abandoned(inside, held)
            if seen is not None and _read_claim(inside, held) == seen:
                inside.unlink(held)  # checked again just before: still the abandoned one
            return False
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
        self.claim = text
        self.held = True
        return True

    def _error(self, exc: OSError) -> Exception:
        from rescale_ssh.errors import ConfigError

        where = self.path + HELD if self.fallback else self.path
        why = exc.strerror or str(exc)
        if exc.errno == errno.EISDIR or (exc.errno in (errno.EPERM, errno.EACCES)
                                         and os.path.isdir(where)):
            why = f"{where} is not a lock file"
        return ConfigError(f"cannot lock {self.path}: {why}"
                           + ("" if not self.fallback else " (Windows has no flock)"
                              if posix.windows() else " (this file system has no flock)"),
                           f"check that {os.path.dirname(self.path)} is yours and writable "
                           "(`rescale-ssh doctor`); remove what is in the way")

    def _close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def detach(self) -> None:
        """Leave the lock to a forked child (the sweeper): close without unlocking."""
        self._close()
        self.held = False
        self.claim = ""

    def adopt(self) -> None:
        """In that child: the lock is this process's now (its pid goes in the claim)."""
        if self.claim:
            import time

            fields = self.claim.split()
            self.claim = f"{os.getpid()} {_host()} {time.time():.0f} {fields[-1]}\n"
            fd = os.open(self.path + HELD, os.O_WRONLY | os.O_TRUNC | NOFOLLOW | CLOEXEC)
            try:
                os.write(fd, self.claim.encode())
            finally:
                os.close(fd)

    def release(self) -> None:
        if self.claim:
            folder, name = os.path.split(self.path + HELD)
            try:
                with _In(folder) as inside:
                    if _read_claim(inside, name) == self.claim:
                        inside.unlink(name)
            except OSError:
                pass  # gone already (taken over as stale): nothing of ours left
            self.claim = ""
        if self.held and self.fd >= 0:
            posix.unlock(self.fd)
        self.held = False
        self._close()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_claim(inside: _In, held: str) -> str | None:
    """The claim's text; None when it cannot be read as one (gone, a link, not a file)."""
    try:
        fd = os.open(inside.name(held), os.O_RDONLY | NOFOLLOW | CLOEXEC | NONBLOCK,
                     dir_fd=inside.fd)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, 512).decode("utf-8", "replace")
    finally:
        os.close(fd)


def _abandoned(inside: _In, held: str) -> str | None:
    """The text of a claim no one holds any more (its process is gone from this host, it is
    older than STALE_AFTER, or it was never finished), to be taken away; else None. A link
    there is abandoned too (its text: None, matched as such)."""
    import time

    try:
        info = inside.lstat(held)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(info.st_mode):
        inside.unlink(held)  # a link is never anyone's claim
        return None
    if not stat.S_ISREG(info.st_mode):
        raise OSError(errno.EISDIR, "not a lock file", inside.name(held))
    text = _read_claim(inside, held)
    if text is None:
        return None
    # Its age by our clock and the file system's (NFS: the server's): a claim from a clock
    # ahead of ours only goes stale later, never sooner.
    age = time.time() - info.st_mtime
    fields = text.split()
    if len(fields) < 4 or not fields[0].isdigit():
        return text if age > _HALF_MADE else None
    if fields[1] == _host():
        # Here: held while its process lives (the sweeper may hold its lock for long), unless
        # so old that the pid must be another process's by now.
        return text if not alive(int(fields[0])) or age > STALE_HERE_AFTER else None
    return text if age > STALE_AFTER else None
