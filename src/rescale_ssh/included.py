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
- a last ``Match`` for when the hook cannot start at all (its Python or launcher is gone, its
  settings are missing): the script says so in one line through a ProxyCommand, instead of
  raw shell errors and "Could not resolve hostname".

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
HEADER = (
    "# Written by rescale-ssh (install, add, sync, ...): the rescale-ssh section of your ssh",
    "# config includes it. Edits here are overwritten; `rescale-ssh uninstall` removes it.",
)


def safe_claim(name: str) -> bool:
    """A name of the user's that a Match pattern list can exclude literally: no comma (the list
    separator), quote, glob or token character."""
    rest = name[len("rescale-"):] if name.startswith("rescale-") else ""
    return bool(rest) and all(char.isascii() and (char.isalnum() or char in "._-")
                              for char in rest)


def render(state_dir: str, *, hook: bool, claimed: list[str] | tuple[str, ...] = ()) -> str:
    from rescale_ssh.hostblock import quote_path, shell_word

    mine = sorted({name for name in claimed if safe_claim(name)})
    # '%n' sits in single quotes in the commands below: names with a ' never get there.
    patterns = ",".join(["rescale-*", "!*'*", *(f"!{name}" for name in mine)])
    lines = [
        *HEADER,
        "",
        "# Jobs added with `rescale-ssh add` (their block above set HostName): take a new",
        "# cluster's host key once, into rescale-ssh's own known_hosts, under the job's alias.",
        f'Match originalhost "{patterns}" !host "rescale-*"',
        "    StrictHostKeyChecking accept-new",
    ]
    if hook:
        script = shell_word(f"{state_dir}/hook", field="state folder")
        fresh = quote_path(f"{state_dir}/fresh.conf", field="state folder")
        lines += [
            "",
            "# Any other rescale-<JOB> (`rescale-ssh install`): the hook writes the job's block",
            "# into fresh.conf while ssh reads this line, so it comes before your own options.",
            f'Match originalhost "{patterns}" host "rescale-*" exec "{script} \'%n\'"',
            f"    Include {fresh}",
            "# The hook could not even start (its program is gone): one line says what to do.",
            f'Match originalhost "{patterns}" host "rescale-*" exec "{script} --broken \'%n\'"',
            f"    ProxyCommand {script} --explain '%n'",
            "    ProxyUseFdpass yes",
            "    LogLevel QUIET",
        ]
    if mine:
        lines += ["", "# Left alone: hosts of your own named like jobs "
                  f"({', '.join(mine)})."]
    return "\n".join(lines) + "\n"


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
