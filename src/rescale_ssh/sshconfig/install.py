"""``install`` / ``uninstall``: the just-in-time hook, in the section and in the tool's files.

``install`` writes the hook's files (toolfiles.py: its settings, its script, the included
``ssh.conf`` with the hook's ``Match``), then marks the section as holding the hook. Run again,
it repairs whatever is broken (a missing state folder, a script or settings from an earlier
version, a program that is gone, an earlier version's layout of the config) and says exactly
what it repaired. ``uninstall`` removes the section and the tool's files, leaving the config as
it was before.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from rescale_ssh import configfile, ownership, paths
from rescale_ssh.configfile import Change
from rescale_ssh.desktop import shellfiles
from rescale_ssh.errors import ConfigError
from rescale_ssh.hook import blockfile, hookconf
from rescale_ssh.hook.hookconf import HookConf
from rescale_ssh.settings import Settings
from rescale_ssh.sshconfig import claims, included, section, toolfiles
from rescale_ssh.sshconfig.section import HookSpec, Section

# In the order uninstall removes them: first what starts the hook (a hook run that starts
# now finds no hook.conf and writes nothing), the locks last (a hook run already under way
# may hold one), then the state folder itself when nothing else is in it.
TOOL_FILES = (hookconf.SCRIPT_FILE, hookconf.FILE, included.FILE, included.EXPLAINER,
              hookconf.HOSTS_FILE, hookconf.FRESH_FILE, blockfile.MARKERS, "jobs",
              "known_hosts", "me",  # me: users/me's answer, cached by `jobs` (me.py)
              "launchkeys",  # launchkey.FILE: each job's launch key (a fingerprint)
              shellfiles.RECORD,
              "putty",  # puttysessions.RECORDS: which PuTTY sessions are ours
              "locks")
LEGACY_FILES = blockfile.LEGACY  # 0.1.0 kept one file per job in these folders


@dataclass(frozen=True)
class InstallResult:
    change: Change
    conf: HookConf
    dry_run: bool
    repaired: list[str] = field(default_factory=list)  # empty on a first install
    left_alone: list[claims.Claim] = field(default_factory=list)
    was_installed: bool = False
    shell_files: shellfiles.Linked = field(default_factory=shellfiles.Linked)


@dataclass(frozen=True)
class UninstallResult:
    change: Change
    removed_files: list[str]
    dry_run: bool


def install(settings: Settings, *, dry_run: bool = False, timeout: float | None = None,
            wait: float | None = None) -> InstallResult:
    from rescale_ssh import openssh, posix

    if posix.windows():
        # The hook's Match line runs a POSIX sh script (<state>/hook): Windows' ssh cannot.
        raise ConfigError("install is not supported on Windows: the hook's Match exec line "
                          "needs a POSIX shell, which Windows' OpenSSH does not run",
                          "add jobs with `rescale-ssh add JOB` or `rescale-ssh sync` instead "
                          "(README: Windows)")
    openssh.require_supported("install the hook")
    path = settings.ssh_config
    ownership.check_secure(path)  # before any file of ours is written
    data = configfile.read_bytes(path) or b""
    before = section.read(data, path=str(path))
    conf = toolfiles.hook_conf(settings, timeout=timeout, wait=wait)
    left_alone = claims.find(str(path), data, skip=(conf.state_dir,))

    def compute(data: bytes) -> bytes:
        current = section.read(data, path=str(path))
        current.hook = HookSpec(state_dir=conf.state_dir)
        return section.splice(data, current, path=str(path))

    notes: list[str] = []
    lost = not os.path.isdir(conf.state_dir)  # (the config's lock is about to be made there)

    def prepare(new: bytes) -> None:
        # Under the config's lock, from the bytes about to be written; also for a read-only
        # config (the lines it prints need these files).
        planned = section.outline(new, path=str(path))
        notes[:] = toolfiles.ensure(conf.state_dir, conf=conf,
                                    claimed=toolfiles.claimed(path, new, conf.state_dir),
                                    static=list(planned.aliases),
                                    persist=toolfiles.sharing(settings),
                                    proxy=toolfiles.static_proxy(path, new, conf.state_dir))

    change = configfile.update(path, compute, dry_run=dry_run, by_hand=section.by_hand,
                               prepare=None if dry_run else prepare)
    if lost and not dry_run:
        notes.insert(0, f"created the state folder {conf.state_dir}, which was missing")
    if before.hook is not None and before.legacy:
        notes.append(f"rewrote the rescale-ssh lines of {path} as this version writes them "
                     "(an earlier version wrote them, or they were edited)")
    if before.hook is not None and before.hook.state_dir != conf.state_dir:
        notes.append(f"the hook's files moved from {before.hook.state_dir} to {conf.state_dir}")
    # Completion and the man page where shells look per user (shellfiles.py); never for ssh.
    shell_files = shellfiles.Linked() if dry_run else shellfiles.link(conf.state_dir)
    return InstallResult(change=change, conf=conf, dry_run=dry_run,
                         repaired=notes if before.hook is not None else [],
                         left_alone=left_alone, was_installed=before.hook is not None,
                         shell_files=shell_files)


def uninstall(settings: Settings, *, dry_run: bool = False) -> UninstallResult:
    path = settings.ssh_config
    change = configfile.update(
        path, lambda data: section.splice(data, Section(), path=str(path)), dry_run=dry_run,
        by_hand=section.by_hand,
    )
    if change.changed and not dry_run:
        _drop_if_empty(path)
    state = paths.state_dir()
    links = shellfiles.linked(str(state))  # before the record goes with the tool's files
    names = (*TOOL_FILES[:-1], *LEGACY_FILES, TOOL_FILES[-1])
    from rescale_ssh.desktop import puttysessions

    # The PuTTY sessions it wrote (not those changed in PuTTY since), then their records.
    sessions = [gone.where for gone in puttysessions.drop_all(dry_run=dry_run)
                if gone.outcome == puttysessions.REMOVED]
    removed = [str(state / name) for name in names if os.path.lexists(state / name)]
    if not dry_run:
        from rescale_ssh.sshconfig import mux

        shellfiles.unlink(str(state))
        for socket in mux.sockets(str(state)):  # shared connections: no new sessions
            mux.stop(str(state), mux.job_of(os.path.basename(socket)), graceful=True)
        for name in removed:
            _remove(Path(name))
        with contextlib.suppress(OSError):  # not empty: files that are not ours stay
            state.rmdir()
    return UninstallResult(change=change, removed_files=links + sessions + removed,
                           dry_run=dry_run)


def _drop_if_empty(path: Path) -> None:
    """rescale-ssh made the config (there was none before `install` or `add`), and nothing is
    left in it: remove it, so that uninstall leaves things as they were. An empty file of the
    user's, or a link (a dotfile manager's), stays."""
    import stat

    marker = configfile.created_marker(path)
    if not os.path.lexists(marker):
        return
    with configfile.locked(path):
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISREG(info.st_mode) and info.st_size == 0:
            os.unlink(path)


def _remove(target: Path) -> None:
    """A file, or a folder and all in it; a hook run still under way may add a lock or a
    record meanwhile (rmtree's rmdir then fails): try again, and leave what still comes."""
    if not target.is_dir() or target.is_symlink():
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
        return
    for _ in range(3):
        try:
            shutil.rmtree(target)
            return
        except FileNotFoundError:
            return
        except OSError:
            continue
    shutil.rmtree(target, ignore_errors=True)


def describe(plan: UninstallResult, settings: Settings) -> str:
    """What uninstall would remove, for its refusal without a terminal."""
    parts = []
    if plan.change.changed:
        parts.append(f"the rescale-ssh section from {settings.ssh_config}")
    if plan.removed_files:
        count = len(plan.removed_files)
        parts.append(f"{count} file{'s' if count > 1 else ''} of its own in "
                     f"{paths.state_dir()}")
    return " and ".join(parts)
