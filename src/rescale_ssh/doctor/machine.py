"""``doctor``'s checks of this machine: ssh, the config and our section, sharing, the hook, the
key, the agent and the API key."""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from rescale_ssh import configfile, posix, programs
from rescale_ssh.errors import (
    ConfigError,
    ProgramError,
    RescaleSSHError,
)
from rescale_ssh.keys import keypair
from rescale_ssh.settings import Settings
from rescale_ssh.sshconfig import section

if TYPE_CHECKING:
    pass
from rescale_ssh.doctor.report import FAIL, INFO, PASS, PROBE_HOST, WARN, WHERE_KEY, Report


def check_sharing(report: Report, current: section.Section, chosen: str, persist: str, *,
             ssh: str, clean: bool) -> None:
    """The jobs' shared connections (mux.py): on or off, which masters run, which sockets no
    master listens on any more (ssh replaces those itself), which aliases cannot share."""
    from rescale_ssh.hook import jobcache
    from rescale_ssh.sshconfig import mux, toolfiles

    state = current.folder()
    if not mux.supported():
        report.add("sharing", INFO, "connections are not shared: Windows' OpenSSH has no "
                   "ControlMaster")
        return
    found = mux.survey(state, ssh=ssh)
    known = set(toolfiles.aliases(current))
    if current.hook is not None:
        known |= {f"rescale-{job}" for job in jobcache.cached_jobs(state)}
    live = [s for s in found if s.live]
    stale = [s for s in found if not s.live]
    orphans = [s for s in live if s.alias.split("-w")[0] not in known]
    if clean:
        for socket in orphans:
            mux.stop(state, mux.job_of(socket.alias))
        removed = mux.clean(state, ssh=ssh)
        if orphans or removed:
            report.add("sharing", PASS, "cleaned: " + ", ".join(
                [f"ended the master of {s.alias}, which has no block" for s in orphans]
                + ([f"removed {len(removed)} stale socket(s) ({', '.join(removed)})"]
                   if removed else [])))
        live = [s for s in live if s not in orphans]
        stale, orphans = [], []
    if chosen != mux.OFF and persist == mux.OFF:
        summary = ("connections to the jobs are not shared: the ssh here is older than OpenSSH "
                   "7.8 (its shared connection would hold the first command's output open)")
    elif persist == mux.OFF:
        summary = "connections to the jobs are not shared (multiplex = no)"
    else:
        summary = (f"each job's connections share one (ControlPersist {persist}); "
                   + (f"{len(live)} running: " + ", ".join(f"{s.alias} (pid {s.pid})"
                                                           for s in live)
                      if live else "none running now"))
    fix = None
    if persist == mux.OFF:
        fix = ("upgrade OpenSSH's client, then `rescale-ssh install` (or any `add`)"
               if chosen != mux.OFF else "`rescale-ssh config set multiplex yes` turns it on")
    report.add("sharing", INFO, summary, fix)
    long = sorted(alias for alias in known if not mux.fits(state, alias))
    if long and persist != mux.OFF:
        report.add("sharing", WARN, f"{', '.join(long)}: not shared, the socket path in {state} "
                   f"would pass the {mux.SOCKET_LIMIT}-byte limit of Unix sockets",
                   "set XDG_STATE_HOME to a shorter folder, then `rescale-ssh install` or "
                   "`rescale-ssh add JOB` again")
    if orphans:
        report.add("sharing", WARN, "running for jobs with no block any more: "
                   + ", ".join(f"{s.alias} (pid {s.pid})" for s in orphans),
                   "`rescale-ssh doctor --clean` ends them")
    if stale:
        report.add("sharing", INFO, f"{len(stale)} socket(s) with no master "
                   f"({', '.join(s.alias for s in stale)}): ssh replaces them on the next "
                   "connection", "`rescale-ssh doctor --clean` removes them")


def check_ssh(report: Report) -> str | None:
    from rescale_ssh import openssh

    try:
        found = openssh.client()
    except ProgramError as error:
        report.add("ssh", FAIL, error.message, "reinstall OpenSSH's client")
        return None
    if found is None:
        report.add("ssh", FAIL, "ssh is not installed (or not on PATH)",
                   "install OpenSSH's client (Debian/Ubuntu: apt-get install openssh-client)")
        return None
    least = f"{openssh.MINIMUM[0]}.{openssh.MINIMUM[1]}"
    if found.version is None:
        report.add("ssh", WARN, f"{found.path} is not OpenSSH ({found.shown}); "
                   "rescale-ssh writes OpenSSH's config format",
                   "install OpenSSH's client and put it first on PATH")
    elif not found.supported:
        report.add("ssh", FAIL, f"{found.shown} is too old: rescale-ssh needs {least} or newer "
                   "(StrictHostKeyChecking accept-new; an older ssh refuses the whole config "
                   "when the file rescale-ssh includes is there)",
                   f"upgrade OpenSSH's client to {least} or newer, or run `rescale-ssh "
                   "uninstall` on this machine")
    else:
        report.add("ssh", PASS, f"{found.shown} ({found.path}); rescale-ssh needs {least}")
    return found.path


def check_config(report: Report, ssh: str | None, config: Path, *, persist: str | None = None
            ) -> section.Section | None:
    """ssh reads the config; our section is whole, at the top, and not overridden."""
    try:
        data = configfile.read_bytes(config)
    except ConfigError as error:
        report.add("config", FAIL, error.message, error.hint or f"check {config}")
        return None
    if data is None:
        report.add("config", INFO, f"there is no ssh config at {config} yet",
                   "`rescale-ssh add JOB` or `rescale-ssh install` creates it")
        return None
    if ssh is not None:
        proc = _effective(ssh, config, PROBE_HOST)
        if proc is None:
            report.add("config", FAIL, f"`ssh -G -F {config}` did not finish",
                       "a `Match exec` command in the config may hang; check it")
        elif proc.returncode == 0:
            report.add("config", PASS, f"ssh reads {config} without errors")
        else:
            last = (proc.stderr.strip().splitlines() or ["no message"])[-1][:200]
            report.add("config", FAIL, f"ssh cannot read {config}: {last}",
                       f"fix the line ssh names, then check with `ssh -G -F {config} HOST`")
    try:
        located = section.locate(data, path=str(config))
        current = section.read(data, path=str(config))
    except RescaleSSHError as error:
        report.add("section", FAIL, error.message, error.hint or f"check {config}")
        return None
    theirs = section.foreign_lines(located)
    if theirs:
        number, text = theirs[0]
        report.add("section", FAIL, f"{config} line {number} is yours but inside the "
                   f"rescale-ssh section ({text.strip()[:60]!r}): rescale-ssh will not change "
                   "the section until it is moved", "move it above the '# >>> rescale-ssh' "
                   "line or below the '# <<< rescale-ssh' line")
    if located.top is None:
        report.add("section", INFO, f"no rescale-ssh section in {config}: no job was added",
                   "`rescale-ssh add JOB` adds one")
    else:
        _placement(report, data, located.top.start, config, len(current.entries))
        if ssh is not None and current.entries:
            _shadowing(report, ssh, config, current)
    _hook(report, config, data, current, persist=persist)
    return current


def _effective(ssh: str, config: Path, host: str) -> programs.Completed | None:
    """``ssh -G -F config host``: the options ssh would use (None when it hangs)."""
    try:
        return programs.run([ssh, "-G", "-F", str(config), host], timeout=20)
    except ProgramError:
        return None


def _placement(report: Report, data: bytes, start: int, config: Path, jobs: int) -> None:
    above = [line.strip() for line in data[:start].splitlines()]
    settings_above = [line for line in above if line and not line.startswith(b"#")]
    if not settings_above:
        report.add("section", PASS, f"the rescale-ssh section is at the top of {config} "
                   f"({jobs} job{'s' if jobs != 1 else ''})")
        return
    first = settings_above[0].decode("utf-8", "replace")[:60]
    report.add("section", FAIL,
               f"the rescale-ssh section is not at the top of {config}: {len(settings_above)} "
               f"line(s) above it come first for ssh (the first: {first!r})",
               "move those lines below the '# <<< rescale-ssh managed section <<<' line "
               "(ssh uses the first value it finds)")


def _shadowing(report: Report, ssh: str, config: Path, current: section.Section) -> None:
    """``ssh -G`` for each job's alias must give the block's HostName, User and Port."""
    wrong: list[str] = []
    for entry in current.entries.values():
        proc = _effective(ssh, config, entry.alias)
        if proc is None or proc.returncode != 0:
            return  # already reported by the config check
        seen = dict(line.partition(" ")[::2] for line in proc.stdout.splitlines())
        t = entry.target
        for option, expected, actual in (
            ("HostName", t.host.lower(), seen.get("hostname", "").lower()),
            ("User", t.user, seen.get("user", "")),
            ("Port", str(t.port), seen.get("port", "")),
        ):
            if actual != expected:
                wrong.append(f"{entry.alias} gets {option} {actual!r}, not {expected!r}")
    if wrong:
        report.add("shadowing", FAIL, "your ssh config overrides the section: " +
                   "; ".join(wrong[:3]) + (f" (and {len(wrong) - 3} more)" if len(wrong) > 3
                                           else ""),
                   "put the rescale-ssh section first in the file, or exclude the jobs from "
                   "the lines that set these options (`Host * !rescale-*`)")
    else:
        count = len(current.entries)
        report.add("shadowing", PASS, f"ssh uses the section's HostName, User and Port for "
                   f"{'all ' + str(count) + ' jobs' if count > 1 else 'the job'}")


def _hook(report: Report, config: Path, data: bytes, current: section.Section, *,
          persist: str | None = None) -> None:
    """What the section includes, and what the hook's Match runs, exist, are current and run."""
    from rescale_ssh.hook import hookconf
    from rescale_ssh.sshconfig import included, toolfiles

    if current.legacy:
        report.add("section", WARN, f"the rescale-ssh lines in {config} are not what this "
                   "version writes (an earlier version wrote them, or they were edited)",
                   "`rescale-ssh install` (or any `add`) rewrites them")
    from rescale_ssh import ownership

    state = current.folder()
    trouble = ownership.problems(state)
    for problem in trouble:
        report.add("state folder", FAIL, f"{problem.message}: ssh refuses such files, or "
                   "runs what another user put there", problem.fix)
    claimed = toolfiles.claimed(config, data, state)
    has_hook = current.hook is not None
    if not current.is_empty():
        wanted = included.render(state, hook=has_hook or os.path.exists(
            os.path.join(state, hookconf.FILE)), claimed=claimed,
            static=toolfiles.aliases(current), persist=persist,
            proxy=toolfiles.static_proxy(config, data, state))
        written = included.read(state)
        fix = "`rescale-ssh install` writes it again" if has_hook else \
            "`rescale-ssh add JOB` for any of your jobs writes it again"
        if written is None:
            report.add("included", FAIL, f"{included.path_of(state)}, which the section "
                       "includes, is missing: ssh asks to confirm each new cluster's host key"
                       + (" and the hook does not run" if has_hook else ""), fix)
        elif written != wanted:
            report.add("included", FAIL, f"{included.path_of(state)} is not what this version "
                       "writes (an earlier version, an edit, or a host of yours added since)",
                       fix)
        else:
            report.add("included", PASS, f"{included.path_of(state)} is current")
    if not has_hook:
        report.add("hook", INFO, "the hook is not installed: `ssh rescale-JOB` works for the "
                   "jobs you added", "`rescale-ssh install` makes it work for every job")
        return
    for name in claimed:
        report.add("own hosts", INFO, f"{name} is a host of your own: the hook leaves it alone")
    try:
        conf = hookconf.load(state)
    except RescaleSSHError as error:
        report.add("hook", FAIL, error.message, "`rescale-ssh install` again writes it")
        return
    for path, what in ((conf.python, "the Python"), (conf.launcher, "the launcher")):
        if path and not os.path.exists(path):
            report.add("hook", FAIL, f"{what} the hook runs, {path}, is gone (rescale-ssh was "
                       "uninstalled, moved, or its Python upgraded): `ssh rescale-JOB` fails "
                       "for jobs you did not add", "reinstall rescale-ssh if needed, then "
                       "`rescale-ssh install`")
            return
    script = conf.script_file
    try:
        with open(script, encoding="utf-8") as handle:
            text: str | None = handle.read()
    except (OSError, UnicodeDecodeError):
        text = None
    if text is None or not os.access(script, os.X_OK):
        report.add("hook", FAIL, f"{script}, which the hook's Match runs, is missing or not "
                   "executable: `ssh rescale-JOB` fails for jobs you did not add",
                   "`rescale-ssh install` again writes it")
        return
    if text != conf.script_text():
        report.add("hook", FAIL, f"{script} is not what this version writes (an earlier "
                   "version, or an edit)", "`rescale-ssh install` again writes it")
        return
    try:
        proc = programs.run([*conf.program, "hook", "--check"], timeout=20)
    except ProgramError as error:
        proc = None
        why = error.message
    if proc is None or proc.returncode != 0 or "ok" not in proc.stdout:
        shown = proc.describe() if proc is not None else why
        report.add("hook", FAIL, f"the hook's program does not run: {shown}",
                   "reinstall rescale-ssh if needed, then `rescale-ssh install`")
        return
    refused = ownership.problems(state, records=False)  # what the hook itself checks
    if refused:
        report.add("hook", FAIL, f"the hook refuses to run from {state} while the state "
                   "folder check fails", refused[0].fix)
        return
    report.add("hook", PASS, "the hook is installed and its program runs: "
               "`ssh rescale-<any job>` works")


def check_key(report: Report, identity: str) -> keypair.KeyFile | None:
    if not os.path.lexists(identity):
        report.add("key", FAIL, f"there is no key at {identity}",
                   "`rescale-ssh key generate`, then paste `rescale-ssh key show` into "
                   f"{WHERE_KEY} before submitting jobs")
        return None
    try:
        local = keypair.inspect(identity)
    except RescaleSSHError as error:
        report.add("key", FAIL, error.message, error.hint or "import a key you can read")
        return None
    if local.format == "ppk":
        report.add("key", FAIL, f"{identity} is a PuTTY key, which ssh cannot use",
                   f"`rescale-ssh key import {identity} --identity NEW_PATH` converts it; "
                   "then use --identity NEW_PATH")
    else:
        report.add("key", PASS, f"{identity}: {local.public.fingerprint} "
                   f"({local.public.label})")
    mode = keypair.mode_of(identity)
    if posix.modes_apply() and mode & 0o077:  # Windows: ACLs, which ssh.exe checks itself
        report.add("key permissions", FAIL, f"{identity} has mode {mode:04o}: others may read "
                   "it, and ssh refuses such a key", f"chmod 600 {identity}")
    elif posix.modes_apply():
        report.add("key permissions", PASS, f"mode {mode:04o}")
    protected = "protected by a passphrase" if local.protected else "not protected by a passphrase"
    report.add("passphrase", INFO, f"the key is {protected}")
    _agent(report, identity, local)
    return local


def _agent(report: Report, identity: str, local: keypair.KeyFile) -> None:
    status = WARN if local.protected else INFO
    fix = f"ssh-add {identity}" if local.protected else None
    if not os.environ.get("SSH_AUTH_SOCK"):
        why = ": ssh asks for the passphrase on every connection" if local.protected else ""
        report.add("agent", status, f"no ssh-agent (SSH_AUTH_SOCK is not set){why}",
                   "eval \"$(ssh-agent)\" && ssh-add " + identity if local.protected else None)
        return
    ssh_add = programs.which("ssh-add")
    if ssh_add is None:
        report.add("agent", status, "ssh-add is not installed; the agent was not asked", fix)
        return
    try:
        proc = programs.run([ssh_add, "-L"], timeout=10)
    except ProgramError as error:
        report.add("agent", status, error.message, fix)
        return
    if proc.returncode not in (0, 1):  # 1: the agent holds no keys; 2: no agent there
        report.add("agent", status, "the ssh-agent at SSH_AUTH_SOCK does not answer", fix)
        return
    held = [line.split()[:2] for line in proc.stdout.splitlines() if len(line.split()) >= 2]
    if local.public.material.split() in held:
        report.add("agent", PASS, "ssh-agent holds the key")
    else:
        report.add("agent", status, "ssh-agent does not hold the key"
                   + (": ssh asks for the passphrase on every connection"
                      if local.protected else ""), fix)


def check_api(report: Report, settings: Settings) -> tuple[str, str] | None:
    from rescale_ssh.errors import AuthError
    from rescale_ssh.platform import account

    try:
        api_key = settings.api_key()
        platform = settings.platform()
        source, note = account.key_source(settings)
    except RescaleSSHError as error:
        report.add("API key", FAIL, error.message, error.hint or "run `rescale-ssh login`")
        return None
    try:
        who = account.me(platform, api_key, source=source)
    except AuthError:
        from rescale_ssh.platform.client import rejected

        report.add("API key", FAIL, f"{platform} rejects the API key from {source}",
                   rejected(source)[1])
        return None
    except RescaleSSHError as error:
        report.add("API key", FAIL, error.message, error.hint or "try again later")
        return None
    # Which profile is read, and why when it is not [default] (a file of rescale-ssh 0.1.0).
    report.add("API key", PASS, f"valid for {who.name} on {platform}, from {source}", note)
    return platform, api_key
