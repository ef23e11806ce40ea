"""``<state>/ssh.conf``: the tool's part of every ssh run, included at the end of the section.

The user's file holds only the section (static Host blocks, ``Host *``, one ``Include``); what
depends on this machine and this version of rescale-ssh lives here, in a file of our own that
every command rewrites as needed and no upgrade leaves stale:

- the host-key policy of the static blocks (``StrictHostKeyChecking accept-new``, which OpenSSH
  older than 7.6 refuses to read, fatally, for every host: design.md, issue 12). It applies to
  the rescale-* names whose HostName is set by then, which is what a static block above does;
- when the hook is installed, its ``Match``: here, at the top of the user's config, so the
  block the hook writes (``fresh.conf``) comes before the user's ``Host *`` and wins on the
  job's very first connection. ``host "rescale-*"`` (the HostName so far, ssh_config(5))
  skips the jobs that have a static block, and the user's own ``rescale-*`` hosts are excluded
  by name (claims.py), so the hook never runs for them;
- the static blocks' ``ProxyCommand`` through ``rescale-ssh proxy`` (ProxyUseFdpass; issue 16):
  it connects with TCP_NODELAY and hands the socket to ssh, which saves ~1.2 round trips of a
  connection on a WAN link (ssh turns Nagle off only after the key exchange). Only where
  descriptors can be passed (not Windows), and not when the user's config routes connections
  itself (a ProxyCommand or ProxyJump of theirs, claims.routes: theirs would come after ours and
  lose). It is guarded by ``exec "test ..."``: when the program is gone (uninstalled, upgraded
  elsewhere), ssh connects directly, as it would without this file, instead of failing;
- when the hook cannot start at all (its Python or launcher is gone, its settings are
  missing), the script puts :func:`explainer` into fresh.conf instead: ssh then says so in one
  line through a ProxyCommand, instead of raw shell errors and "Could not resolve hostname".

Other hosts pay for reading these few lines and for ``originalhost`` failing (bench/ item 2).
ssh opens the file for every run: it is written 0644 (it holds paths, no secrets), so that a
copy written by root (``sudo``) still never makes the user's ssh fail with "Permission denied".
Standard library only: the hook's cold path rewrites it when it finds a new host of the user's.
"""

from __future__ import annotations

import os

from rescale_ssh import store

FILE = "ssh.conf"
MODE = 0o644
HEADER = ("# Written by rescale-ssh, included by the rescale-ssh section of your ssh config.",)
EXPLAINER = "broken.conf"  # explainer(): copied into fresh.conf by the script when needed


def safe_claim(name: str) -> bool:
    """A name of the user's that a Match pattern list can exclude literally: no comma (the list
    separator), quote, glob or token character."""
    rest = name[len("rescale-"):] if name.startswith("rescale-") else ""
    return bool(rest) and all(char.isascii() and (char.isalnum() or char in "._-")
                              for char in rest)


def render(state_dir: str, *, hook: bool, claimed: list[str] | tuple[str, ...] = (),
           static: list[str] | tuple[str, ...] = (), proxy: list[str] | None = None,
           persist: str | None = None) -> str:
    """Every line here costs every ssh run (bench/ item 2): a ``Host`` line for the policy of
    the ``static`` aliases (the section's blocks; cheap: no ``Match`` criteria to evaluate) and
    one ``Match ... exec`` (OpenSSH 9.2 prepares an exec command, token expansion and all, even
    after ``originalhost`` failed). ``proxy``: the program (hookconf.HookConf.program) the
    static aliases connect through (module docstring). ``persist`` (ControlPersist; None or
    ``no``: none) shares the static aliases' connections (mux.py), those whose socket path
    fits."""
    from rescale_ssh.sshconfig import mux
    from rescale_ssh.sshconfig.hostblock import PYTHON_FLAGS, command, quote_path, shell_word

    mine = sorted({name for name in claimed if safe_claim(name)})
    # '%n' sits in single quotes in the command below: names with a ' never get there.
    patterns = ",".join(["rescale-*", "!*'*", *(f"!{name}" for name in mine)])
    lines = [*HEADER]
    aliases = sorted({alias for alias in static if safe_claim(alias)})
    if aliases:
        # The added jobs' host keys: taken once, into rescale-ssh's own known_hosts, under
        # the job's alias (the blocks the hook writes say so themselves).
        lines += [" ".join(["Host", *aliases]), "    StrictHostKeyChecking accept-new"]
        shared = [alias for alias in aliases if mux.fits(state_dir, alias)]
        if persist not in (None, mux.OFF) and shared and mux.supported():
            if shared != aliases:
                lines.append(" ".join(["Host", *shared]))
            lines += mux.control_lines(state_dir, persist)
    if aliases and proxy:
        # Only the static aliases (originalhost: what was typed), and only while the program
        # is there: a block whose proxy is gone connects as it did before this line existed.
        present = " -a ".join(
            f"{'-x' if index == 0 else '-f'} {shell_word(word, field='rescale-ssh program')}"
            for index, word in enumerate(w for w in proxy if w not in PYTHON_FLAGS))
        lines += [
            # !*'*: a negation no alias matches, which makes the list a pattern: IDE parsers
            # (VS Code Remote-SSH lists a Match's plain originalhost list as one host,
            # microsoft/vscode-remote-release#11064) leave it out of their host lists.
            f'Match originalhost "{",".join(aliases)},!*\'*" exec "test {present}"',
            f"    ProxyCommand {command(proxy)} proxy %h %p",
            "    ProxyUseFdpass yes",
        ]
    if hook:
        script = shell_word(f"{state_dir}/hook", field="state folder")
        fresh = quote_path(f"{state_dir}/fresh.conf", field="state folder")
        lines += [
            # Any rescale-<JOB> without a block (HostName unset): the hook writes its block
            # into fresh.conf while ssh reads this line, before the user's own options.
            f'Match originalhost "{patterns}" host "rescale-*" exec "{script} \'%n\'"',
            f"    Include {fresh}",
        ]
    return "\n".join(lines) + "\n"


def explainer(state_dir: str) -> str:
    """What the script puts in fresh.conf when the hook cannot start (its Python, launcher or
    settings are gone): ssh, about to read fresh.conf, then runs ``--explain``, which prints
    one line that names the fix, and nothing else (LogLevel QUIET)."""
    from rescale_ssh.sshconfig.hostblock import shell_word

    script = shell_word(f"{state_dir}/hook", field="state folder")
    return ("# rescale-ssh: the hook cannot start; `rescale-ssh install` repairs it.\n"
            "Host *\n"
            f"    ProxyCommand {script} --explain '%n'\n"
            "    ProxyUseFdpass yes\n"
            "    LogLevel QUIET\n")


def static_aliases(text: str | None) -> list[str]:
    """The aliases of the policy line of an ssh.conf this module wrote (the hook keeps them
    when it rewrites the file for a host of the user's)."""
    for line in (text or "").split("\n"):
        if line.startswith("Host rescale-"):
            return line.split()[1:]
    return []


def persist_of(text: str | None) -> str | None:
    """The ControlPersist an ssh.conf this module wrote gives the static aliases (None: none)."""
    for line in (text or "").split("\n"):
        if line.startswith("    ControlPersist "):
            return line.split()[1]
    return None


def static_proxy(text: str | None) -> bool:
    """The static aliases connect through the proxy in an ssh.conf this module wrote."""
    return any(line.startswith('Match originalhost "rescale-') and " exec \"test " in line
               for line in (text or "").split("\n"))


def path_of(state_dir: str) -> str:
    return os.path.join(state_dir, FILE)


def write(state_dir: str, text: str) -> bool:
    """Replace the file when its text differs; True when it wrote."""
    return store.write_atomic(path_of(state_dir), text, mode=MODE)


def read(state_dir: str) -> str | None:
    try:
        with open(path_of(state_dir), encoding="utf-8", newline="") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError):
        return None
