"""The tool's files in its state folder, kept as this version writes them.

The section in the user's config includes ``<state>/ssh.conf`` (included.py); with the hook,
that file runs ``<state>/hook`` (the script), which starts the program named in ``hook.conf``.
Every command that writes the section first makes these files current (:func:`write_section`),
so no command can leave the config naming a file that is missing or from an earlier version
(issue 12: an ``add`` after an upgrade once rewrote the Match line to run a script that only
``install`` wrote). Each change is described, for ``install`` to say exactly what it repaired.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rescale_ssh import configfile, ownership, paths, store, userconfig, validate
from rescale_ssh.configfile import Change
from rescale_ssh.errors import RescaleSSHError
from rescale_ssh.hook import hookconf
from rescale_ssh.hook.hookconf import HookConf
from rescale_ssh.settings import Settings
from rescale_ssh.sshconfig import claims, included, section

# Where the launcher was before the package had rooms (issue 17): a shim that runs the new one,
# kept so that configs written then work until a command rewrites their files.
OLD_LAUNCHER = str(Path(__file__).parent.parent / "launch.py")


def program() -> tuple[str, str]:
    """The interpreter and launcher ssh will run: ``python -I -S .../hook/launch.py``."""
    launcher = Path(__file__).parent.parent / "hook" / "launch.py"
    return sys.executable, str(launcher)


def sharing(settings: Settings) -> str:
    """The ControlPersist to write (mux.py), or ``no``: the setting, where this machine's
    OpenSSH shares connections safely (openssh.SHARING) and is not Windows' port."""
    from rescale_ssh import openssh
    from rescale_ssh.sshconfig import mux

    chosen = settings.multiplex
    if chosen == mux.OFF or (mux.supported() and openssh.shares_connections()):
        return chosen
    return mux.OFF


def hook_conf(settings: Settings, *, state_dir: str | None = None,
              timeout: float | None = None, wait: float | None = None) -> HookConf:
    """The hook's settings as ``install`` writes them now, from these settings."""
    state = section.validate_state_dir(state_dir or str(paths.state_dir()))
    python, launcher = program()
    platform = ""
    if settings.explicit_platform() is not None:
        platform = settings.platform()  # chosen explicitly: the hook must use the same one
    return HookConf(
        state_dir=state,
        python=python,
        launcher=launcher,
        identity=settings.identity,
        known_hosts=settings.known_hosts,
        platform=platform,
        profile=settings.profile_name or "",
        timeout=hookconf.DEFAULT_TIMEOUT if timeout is None else timeout,
        wait=hookconf.DEFAULT_WAIT if wait is None else wait,
        config=str(settings.ssh_config),
        multiplex=sharing(settings),
        apiconfig="" if settings.chosen_config_file is None else validate.local_path(
            settings.chosen_config_file, field="Rescale CLI config file",
            source="RESCALE_CONFIG_FILE"),
    )


def kept_conf(settings: Settings, state_dir: str) -> HookConf:
    """The installed hook's settings, made to work with this version: what ``install`` chose
    (identity, platform, time limits) stays; a program that is gone is replaced by this one;
    only a hook.conf that is missing or unreadable is made anew from these settings (so an
    odd setting of this command, a RESCALE_API_URL, say, never stops a `remove`)."""
    try:
        conf = hookconf.load(state_dir)
    except RescaleSSHError:
        return hook_conf(settings, state_dir=state_dir)
    if not _runs(conf):
        conf.python, conf.launcher = program()
    elif conf.python and os.path.realpath(conf.launcher) == os.path.realpath(OLD_LAUNCHER):
        conf.launcher = program()[1]  # the shim earlier versions' files name: moved on
    conf.config = conf.config or str(settings.ssh_config)
    conf.precedence = ()  # hosts.conf belonged to the layout before this one
    conf.version = hookconf.VERSION
    return conf


def _runs(conf: HookConf) -> bool:
    if conf.python:
        return os.access(conf.python, os.X_OK) and os.path.isfile(conf.launcher)
    return os.access(conf.launcher, os.X_OK)


def ensure(state_dir: str, *, conf: HookConf | None, claimed: list[str],
           static: list[str], proxy: list[str] | None = None,
           persist: str | None = None) -> list[str]:
    """Write what the section includes (and, with ``conf``, the hook's files) where it is
    missing or not what this version writes. Returns what was changed, one sentence each."""
    from rescale_ssh.hook import blockfile

    notes: list[str] = []
    if not os.path.isdir(state_dir):
        notes.append(f"created the state folder {state_dir}, which was missing")
        store.ensure_dir(state_dir)
    hook_changed = False
    if conf is not None:
        conf_path = os.path.join(state_dir, hookconf.FILE)
        old = store.read_record(conf_path)
        text = conf.to_text()
        why = _conf_change(old, conf)
        if _write(conf_path, text, 0o600, notes, what="the hook's settings", why=why):
            hook_changed = True
        moved = "is gone" in why and hook_changed
        if _write(conf.script_file, conf.script_text(), 0o700, notes, what="the hook's script",
                  why="to start the program now named" if moved
                  else "from an earlier version, or edited"):
            hook_changed = True
        _write(os.path.join(state_dir, included.EXPLAINER), included.explainer(state_dir),
               included.MODE, notes, what="what the hook says when it cannot start",
               why="from an earlier version, or edited")
        if _is_explainer(state_dir):
            store.remove(os.path.join(state_dir, hookconf.FRESH_FILE))
            notes.append("removed the notice the script left while the hook could not start")
    _write(included.path_of(state_dir), included.render(state_dir, hook=conf is not None,
                                                        claimed=claimed, static=static,
                                                        proxy=proxy, persist=persist),
           included.MODE, notes, what="the file the section includes",
           why="from an earlier version, or your own hosts changed")
    if conf is not None:
        legacy = [name for name in (*blockfile.LEGACY, hookconf.HOSTS_FILE)
                  if os.path.exists(os.path.join(state_dir, name))]
        if hook_changed or legacy:
            import shutil

            for name in blockfile.LEGACY:
                shutil.rmtree(os.path.join(state_dir, name), ignore_errors=True)
            blockfile.rebuild(conf)  # blocks, markers and hosts.conf as this layout wants them
        if legacy:
            notes.append(f"removed what an earlier version kept in {state_dir} "
                         f"({', '.join(sorted(legacy))})")
    from rescale_ssh.sshconfig import knownhosts

    known = conf.known_hosts if conf is not None else str(paths.known_hosts())
    knownhosts.ensure(Path(known))
    return notes


def _is_explainer(state_dir: str) -> bool:
    """fresh.conf is the explainer the script put there while the hook could not start."""
    try:
        with open(os.path.join(state_dir, hookconf.FRESH_FILE), encoding="utf-8") as handle:
            return handle.read() == included.explainer(state_dir)
    except (OSError, UnicodeDecodeError):
        return False


def _write(path: str, text: str, mode: int, notes: list[str], *, what: str, why: str) -> bool:
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            old: str | None = handle.read()
    except FileNotFoundError:
        old = None
    except (OSError, UnicodeDecodeError):
        old = ""
    if not store.write_atomic(path, text, mode=mode):
        return False
    if old is None:
        notes.append(f"wrote {what} {path}, which was missing")
    elif old != text:
        notes.append(f"rewrote {what} {path} ({why})")
    return True


def _conf_change(old: dict[str, str] | None, conf: HookConf) -> str:
    if old is None or store.UNREADABLE in old:
        return "it could not be read"
    for key, now in (("python", conf.python), ("launcher", conf.launcher)):
        before = old.get(key, "")
        if before and before != now and not os.path.exists(before):
            return f"it named {before}, which is gone: the hook now runs {now}"
    if "version" not in old:
        return "written by an earlier version"
    return "with the settings of this install"


def claimed(config: Path | str, data: bytes | None, state_dir: str) -> list[str]:
    return claims.names(str(config), data, skip=(state_dir,))


def static_proxy(config: Path | str, data: bytes | None, state_dir: str) -> list[str] | None:
    """The program the static blocks connect through (included.py), or None: on Windows (no
    descriptor passing), or when the user's config routes connections itself."""
    from rescale_ssh import posix

    if not posix.can_pass_fds() or claims.routes(str(config), data, skip=(state_dir,)):
        return None
    from rescale_ssh.sshconfig.hostblock import PYTHON_FLAGS

    python, launcher = program()
    return [python, *PYTHON_FLAGS, launcher]


def refresh(settings: Settings, planned: section.Outline, data: bytes) -> list[str]:
    """Before the section of ``data`` is written: its included files as this version writes
    them. The hook's files are repaired from its own settings (kept_conf)."""
    state = planned.section().folder()
    has_hook = planned.hook is not None or os.path.exists(os.path.join(state, hookconf.FILE))
    conf = kept_conf(settings, state) if has_hook else None
    return ensure(state, conf=conf, claimed=claimed(settings.ssh_config, data, state),
                  static=list(planned.aliases), persist=sharing(settings),
                  proxy=static_proxy(settings.ssh_config, data, state))


def aliases(current: section.Section) -> list[str]:
    """Every alias the section's blocks define: heads and workers."""
    from rescale_ssh.target import worker_alias

    found = []
    for entry in current.entries.values():
        found.append(entry.alias)
        found += [worker_alias(entry.job, index)
                  for index in range(1, len(entry.target.workers) + 1)]
    return found


def write_section(settings: Settings, compute: Callable[[bytes], bytes], *, dry_run: bool,
                  action: str | None) -> Change:
    """Write the section through ``compute``, after making the files it includes current
    (under the config's lock, from the very bytes written: writers racing each other leave
    the included file as the last one wrote the section).

    ``action`` (what the command does, for the message) first checks that the installed ssh
    can read what will be written (openssh.py): ``add`` and ``sync``. Removing is never
    refused, but below OpenSSH 7.6 it creates or rewrites no included file: that file holds
    what such an ssh refuses for every host.
    """
    from rescale_ssh import openssh

    path = settings.ssh_config
    ownership.check_secure(path)  # before any file of ours is written
    if action is not None:
        openssh.require_supported(action)
        too_old = False
    else:
        too_old = openssh.too_old()

    def prepare(new: bytes) -> None:
        planned = section.outline(new, path=str(path))  # our own rendering: no block to parse
        if too_old or planned.is_empty() or not planned.section().includable():
            return
        try:
            refresh(settings, planned, new)
        except RescaleSSHError:
            if action is not None:
                raise
            # Removing goes on: the included file is brought up to date by the next add.

    return configfile.update(path, compute, dry_run=dry_run, by_hand=section.by_hand,
                             prepare=None if dry_run else prepare)


@dataclass(frozen=True)
class HookUpdate:
    """The installed hook's settings, made to agree with the settings now in effect."""

    path: str  # hook.conf
    key: str
    before: str
    after: str
    stale: tuple[str, ...] = ()  # jobs whose blocks (written by `add`) name another identity


def update_hook(settings: Settings, key: str) -> HookUpdate | None:
    """With the hook installed, what hook.conf holds for ``key`` made what ``install`` would
    write now (its other settings, time limits included, stay), and the hook's blocks rebuilt
    with it, under the config's lock as ``install`` does. None: no hook, or nothing to do."""
    if key not in userconfig.HOOK_KEYS:
        return None
    config = settings.ssh_config
    data = configfile.read_bytes(config)
    current = section.read(data or b"", path=str(config))
    if current.hook is None:
        if key == "multiplex" and current.entries:  # the static blocks' part: ssh.conf
            configfile.update(config, lambda old: old, by_hand=section.by_hand,
                              prepare=lambda new: _refresh(settings, new))
        return None
    state = current.hook.state_dir
    conf = kept_conf(settings, state)
    now = hook_conf(settings, state_dir=state)
    before, after = getattr(conf, key) or "", getattr(now, key) or ""
    stale = tuple(sorted(entry.job for entry in current.entries.values()
                         if key == "identity" and entry.identity != now.identity))
    if before == after:
        return None
    setattr(conf, key, getattr(now, key))

    def prepare(new: bytes) -> None:
        planned = section.outline(new, path=str(config))
        ensure(state, conf=conf, claimed=claimed(config, new, state),
               static=list(planned.aliases), persist=sharing(settings),
               proxy=static_proxy(config, new, state))

    configfile.update(config, lambda old: old, by_hand=section.by_hand, prepare=prepare)
    return HookUpdate(os.path.join(state, hookconf.FILE), key, before, after, stale)


def _refresh(settings: Settings, new: bytes) -> None:
    planned = section.outline(new, path=str(settings.ssh_config))
    if not planned.is_empty() and planned.section().includable():
        refresh(settings, planned, new)
