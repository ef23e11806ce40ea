"""``install`` / ``uninstall``: the just-in-time hook in the ssh config, and its files.

``install`` writes ``<state>/hook.conf`` (what the hook must agree on with the config), then adds
the hook to the ssh config: the ``Match ... exec`` block at the end of the file and, only when
the user's config sets one of our options for every host, an ``Include`` of earlier results at
the end of the top section (blockfile.py says why that is not always there). ``uninstall``
removes both, every block, and the tool's files, leaving the config as it was before.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from rescale_ssh import blockfile, configfile, hookconf, knownhosts, paths, section
from rescale_ssh import settings as settings_module
from rescale_ssh.configfile import Change
from rescale_ssh.errors import ConfigError
from rescale_ssh.hookconf import HookConf
from rescale_ssh.section import HookSpec, Section
from rescale_ssh.settings import Settings

TOOL_FILES = (hookconf.HOSTS_FILE, hookconf.FRESH_FILE, blockfile.MARKERS, "jobs", "locks",
              hookconf.FILE, hookconf.SCRIPT_FILE, "known_hosts")
LEGACY_FILES = blockfile.LEGACY  # 0.1.0 kept one file per job in these folders


@dataclass(frozen=True)
class InstallResult:
    change: Change
    conf: HookConf
    dry_run: bool
    shadowed: list[str]


# Options of the hook's blocks that the user's own config can take first (first value wins):
# the hook's block is included after the user's lines on a job's first connection.
WATCHED = ("user", "port", "hostname", "identitiesonly", "stricthostkeychecking",
           "userknownhostsfile", "hostkeyalias", "proxycommand", "proxyjump")
PROBE_ALIAS = "rescale-Probe0"


@dataclass(frozen=True)
class UninstallResult:
    change: Change
    removed_files: list[str]
    dry_run: bool


def program() -> tuple[str, str]:
    """The interpreter and launcher ssh will run: ``python -I -S .../launch.py``."""
    launcher = Path(__file__).with_name("launch.py")
    return sys.executable, str(launcher)


def hook_conf(settings: Settings, *, timeout: float | None = None,
              wait: float | None = None, precedence: tuple[str, ...] = ()) -> HookConf:
    state_dir = section.validate_state_dir(str(paths.state_dir()))
    python, launcher = program()
    platform = ""
    if settings.platform_flag or os.environ.get(settings_module.ENV_PLATFORM):
        platform = settings.platform()  # chosen explicitly: the hook must use the same one
    return HookConf(
        state_dir=state_dir,
        python=python,
        launcher=launcher,
        identity=settings.identity,
        known_hosts=settings.known_hosts,
        platform=platform,
        profile=settings.profile_name or "",
        timeout=hookconf.DEFAULT_TIMEOUT if timeout is None else timeout,
        wait=hookconf.DEFAULT_WAIT if wait is None else wait,
        precedence=precedence,
    )


def install(settings: Settings, *, dry_run: bool = False, timeout: float | None = None,
            wait: float | None = None) -> InstallResult:
    path = settings.ssh_config
    shadowed = shadowing(path)
    conf = hook_conf(settings, timeout=timeout, wait=wait, precedence=tuple(shadowed))
    spec = HookSpec(state_dir=conf.state_dir, precedence=bool(conf.precedence))

    def compute(data: bytes) -> bytes:
        current = section.read(data, path=str(path))
        current.hook = spec
        return section.splice(data, current, path=str(path))

    if not dry_run:
        from rescale_ssh import store

        store.ensure_dir(conf.state_dir)
        store.write_atomic(os.path.join(conf.state_dir, hookconf.FILE), conf.to_text())
        store.write_atomic(conf.script_file, conf.script_text())
        os.chmod(conf.script_file, 0o700)
        blockfile.rebuild(conf)
        for name in LEGACY_FILES:
            shutil.rmtree(os.path.join(conf.state_dir, name), ignore_errors=True)
    change = configfile.update(path, compute, dry_run=dry_run,
                               by_hand=section.by_hand)
    if not dry_run:
        knownhosts.ensure(Path(conf.known_hosts))
    return InstallResult(change=change, conf=conf, dry_run=dry_run, shadowed=shadowed)


def shadowing(config: Path) -> list[str]:
    """The watched options the user's config sets for every ``rescale-*`` name.

    ``ssh -G`` with the config (our regions taken out, so no hook runs and no block of ours
    counts) vs with an empty one (both ignore /etc/ssh/ssh_config), for an alias no block
    matches.
    """
    import subprocess
    import tempfile

    ssh = shutil.which("ssh")
    if ssh is None:
        return []
    try:
        data = config.read_bytes()
        theirs = section.splice(data, Section(), path=str(config))
    except (OSError, ConfigError):
        return []

    def effective(path: str) -> dict[str, str]:
        try:
            proc = subprocess.run([ssh, "-G", "-F", path, PROBE_ALIAS], capture_output=True,
                                  text=True, timeout=20, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired):
            return {}
        pairs = (line.partition(" ") for line in proc.stdout.splitlines())
        return {key: value for key, _, value in pairs if key in WATCHED}

    with tempfile.TemporaryDirectory(prefix="rescale-ssh-") as folder:
        copy = os.path.join(folder, "config")
        with open(copy, "wb") as handle:
            handle.write(theirs)
        mine = effective(copy)
    default = effective(os.devnull)
    if not mine or not default:
        return []
    return [key for key in WATCHED if mine.get(key) != default.get(key)]


def uninstall(settings: Settings, *, dry_run: bool = False) -> UninstallResult:
    path = settings.ssh_config
    change = configfile.update(
        path, lambda data: section.splice(data, Section(), path=str(path)), dry_run=dry_run,
        by_hand=section.by_hand,
    )
    state = paths.state_dir()
    removed = [str(state / name) for name in (*TOOL_FILES, *LEGACY_FILES)
               if (state / name).exists()]
    if not dry_run:
        for name in removed:
            target = Path(name)
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink()
    return UninstallResult(change=change, removed_files=removed, dry_run=dry_run)
