"""The `putty` command, and the PuTTY part of `sync --putty`, `prune`, `sync` and `remove`.

Each parses, calls the core (putty, puttykey, puttysessions) and renders what it returns.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from rescale_ssh.cli.common import (
    DryRun,
    ForceLine,
    FromLog,
    JobArg,
    open_client,
    settings_of,
    warn,
)

if TYPE_CHECKING:
    from rescale_ssh.desktop.putty import Session
    from rescale_ssh.keys.puttykey import PuttyKey
    from rescale_ssh.settings import Settings
    from rescale_ssh.sshconfig.hostblock import HostEntry
    from rescale_ssh.target import Target


def register(app: typer.Typer) -> None:
    app.command("putty")(putty)


def putty(
    ctx: typer.Context,
    job: JobArg,
    from_log: FromLog = None,
    force: ForceLine = False,
    reg: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--reg", metavar="FILE",
        help="Write the session as a .reg file to FILE ('-': print it) instead, for regedit "
        "on Windows.", show_default=False)] = None,
    replace: Annotated[bool, typer.Option(
        "--replace", help="Overwrite a session (or --reg FILE) of that name that rescale-ssh "
        "did not write, or that was changed in PuTTY since.")] = False,
    passphrase_file: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--passphrase-file", metavar="FILE",
        help="When the key has a passphrase and no .ppk yet: read the passphrase from the "
        "first line of FILE.", show_default=False)] = None,
    dry_run: DryRun = False,
) -> None:
    """Write a PuTTY saved session rescale-JOB: host, port, user, key and host key.

    For PuTTY, plink, pscp and psftp: the session holds the job's address, port and user
    (from its block, else the platform, or --from-log), and the key: your identity
    (--identity) as a PuTTY .ppk beside it, made when there is none (encrypted with the key's
    passphrase, asked once). When rescale-ssh knows the cluster's host key (after one `ssh
    rescale-JOB`), the session pins it, so PuTTY connects without asking; otherwise PuTTY
    asks you once to confirm it. Written to PuTTY's sessions folder (~/.putty/sessions) on
    Linux and macOS, to the registry on Windows; with --reg FILE as a .reg file instead. A
    session of that name that rescale-ssh did not write is never replaced without --replace.
    `prune`, `sync`, `remove` and `uninstall` remove the sessions of the jobs they drop.

    Example: rescale-ssh putty Fotxeb && plink -load rescale-Fotxeb
    """
    from rescale_ssh.desktop import putty as core
    from rescale_ssh.keys import keypair

    settings = settings_of(ctx)
    keypair.inspect(settings.identity)  # no key: said before the platform is asked anything
    target, known_hosts = _target(settings, job, from_log, force)
    key = _key(settings, passphrase_file, dry_run=dry_run)
    item = core.session(target, key.path, _host_keys(known_hosts, target.alias))
    if reg is not None:
        _write_reg(item, reg, replace=replace, dry_run=dry_run)
    else:
        from rescale_ssh.desktop import puttysessions

        saved = puttysessions.save(puttysessions.default_backend(), item, replace=replace,
                                   dry_run=dry_run)
        if dry_run:
            typer.echo(saved.text, nl=False)
            typer.echo(f"Dry run: nothing was written; without --dry-run this writes "
                       f"{saved.where}.", err=True)
            return
        verb = {"added": "Wrote", "updated": "Updated", "unchanged": "Unchanged"}[saved.state]
        typer.echo(f"{verb} PuTTY session {item.name} → {item.user}@{item.host} port "
                   f"{item.port} ({saved.where})")
        if saved.replaced:
            typer.echo("  (replaced the session of that name that was there: --replace)")
    if not dry_run:
        _report_key(key, settings.identity, err=reg == "-")  # stdout is the .reg text then
        _report_host_keys(item, err=reg == "-")
        if reg is None:
            typer.echo(f"  PuTTY: Saved Sessions → {item.name} → Load → Open; or "
                       f"`plink -load {item.name}`")


def _target(settings: Settings, job: str, from_log: str | None, force: bool
            ) -> tuple[Target, str]:
    """As `add` finds the job (--from-log, else the platform), but its block first; and the
    known_hosts file that holds its host keys."""
    from rescale_ssh.errors import NotFoundError
    from rescale_ssh.platform import resolver
    from rescale_ssh.sshconfig import hosts

    if from_log is not None:
        text = sys.stdin.read() if from_log == "-" else from_log
        return resolver.from_log(job, text, source="--from-log", force=force), \
            settings.known_hosts
    try:
        entry = hosts.find(settings, job)
        return entry.target, entry.known_hosts or settings.known_hosts
    except NotFoundError:
        pass
    with open_client(settings) as client:
        return resolver.resolve(client, job), settings.known_hosts


def _key(settings: Settings, passphrase_file: str | None, *, dry_run: bool) -> PuttyKey:
    from rescale_ssh.cli.keys import _ask_existing
    from rescale_ssh.keys import puttykey

    identity = settings.identity
    return puttykey.ensure(identity, passphrase=_ask_existing(passphrase_file, identity),
                           dry_run=dry_run)


def _host_keys(known_hosts: str, alias: str) -> list[str]:
    from rescale_ssh.desktop import putty
    from rescale_ssh.sshconfig import knownhosts

    return [putty.fingerprint(blob) for blob in knownhosts.host_keys(Path(known_hosts), alias)]


def _write_reg(item: Session, out: str, *, replace: bool, dry_run: bool) -> None:
    import os

    from rescale_ssh import configfile
    from rescale_ssh.desktop import putty
    from rescale_ssh.errors import ConfigError

    text = putty.render_reg([item])
    if out == "-" or dry_run:
        typer.echo(text, nl=False)
        if dry_run and out != "-":
            typer.echo(f"Dry run: nothing was written; without --dry-run this writes {out}.",
                       err=True)
        return
    path = os.path.abspath(os.path.expanduser(out))
    if os.path.lexists(path) and not replace:
        raise ConfigError(f"{path} already exists", "pass --replace to overwrite it")
    configfile.replace_file(Path(path), putty.reg_bytes(text), mode=0o644)
    typer.echo(f"Wrote {path} (PuTTY session {item.name} → {item.user}@{item.host} port "
               f"{item.port}); import it on Windows: double-click it, or `reg import {out}`")
    from rescale_ssh import posix

    if not posix.windows():
        typer.echo(f"note: its key file is this machine's {item.key_file}: on Windows, run "
                   "`rescale-ssh putty` there (or change Connection → SSH → Auth → "
                   "Credentials in PuTTY)", err=True)


def _report_key(key: PuttyKey, identity: str, *, err: bool = False) -> None:
    made = f"made from {identity}" if key.made else "already there"
    secret = ("encrypted with the key's passphrase: PuTTY asks for it, or load the key into "
              "Pageant" if key.encrypted else "not encrypted")
    typer.echo(f"  key: {key.path} ({made}; {secret})", err=err)


def _report_host_keys(item: Session, *, err: bool = False) -> None:
    if item.host_keys:
        typer.echo(f"  host key: pinned ({', '.join(item.host_keys)}): PuTTY connects "
                   "without asking, and refuses any other key", err=err)
    else:
        typer.echo(f"note: the host key of {item.name} is not known yet: PuTTY shows it and "
                   f"asks you to confirm it on the first connection (or run `ssh "
                   f"{item.name}` once, then `rescale-ssh putty {item.job}` again to pin it)",
                   err=True)


# -- for sync, prune and remove ------------------------------------------------------------


def key_for_sync(settings: Settings, passphrase_file: str | None, *, dry_run: bool
                 ) -> PuttyKey:
    """`sync --putty`: the .ppk, made (or its passphrase asked) before anything is written."""
    return _key(settings, passphrase_file, dry_run=dry_run)


def write_for_sync(settings: Settings, key: PuttyKey, *, dry_run: bool) -> None:
    """A session for every job with a block after `sync`; one that cannot be written is a
    warning, and the others are written."""
    from rescale_ssh.desktop import putty, puttysessions
    from rescale_ssh.errors import RescaleSSHError
    from rescale_ssh.sshconfig import hosts

    backend = puttysessions.default_backend()
    entries: list[HostEntry] = hosts.entries(settings)
    for entry in entries:
        try:
            item = putty.session(entry.target, key.path, _host_keys(
                entry.known_hosts or settings.known_hosts, entry.alias))
            saved = puttysessions.save(backend, item, dry_run=dry_run)
        except RescaleSSHError as exc:
            warn(f"PuTTY session rescale-{entry.job} not written: {exc.message}", exc.hint)
            continue
        if saved.state == puttysessions.UNCHANGED:
            continue
        verb = "would write" if dry_run else "Wrote"
        typer.echo(f"{verb} PuTTY session {saved.name} ({saved.where})")


def has_session(job: str) -> bool:
    """Whether rescale-ssh wrote a PuTTY session for ``job`` (that `remove` would remove)."""
    from rescale_ssh.desktop import puttysessions

    return puttysessions.recorded(job)


def drop_sessions(jobs: list[str], *, dry_run: bool) -> None:
    """The PuTTY sessions of jobs just dropped: ours are removed, changed ones kept."""
    from rescale_ssh.desktop import puttysessions

    if not jobs:
        return
    for gone in puttysessions.drop(None, jobs, dry_run=dry_run):
        if gone.outcome == puttysessions.REMOVED:
            typer.echo(f"{'Would remove' if dry_run else 'Removed'} PuTTY session {gone.name}")
        elif gone.outcome == puttysessions.CHANGED:
            typer.echo(f"note: kept PuTTY session {gone.name} ({gone.where}): it was changed in "
                       "PuTTY since rescale-ssh wrote it", err=True)
