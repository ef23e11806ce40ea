"""Pieces every command module shares: argument types, settings, the platform client."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from rescale_ssh.settings import Settings

if TYPE_CHECKING:
    from rescale_ssh.client import Client

PROG = "rescale-ssh"

def complete_jobs(ctx: typer.Context, incomplete: str) -> list[str]:
    """Job IDs for TAB: the jobs with a block, and those the hook has records of.

    Local files only: a completion request never touches the network (nor imports requests).
    """
    from rescale_ssh import configfile, jobcache, section

    try:
        chosen = ctx.find_root().params.get("ssh_config")
        settings = Settings(ssh_config_flag=chosen if isinstance(chosen, str) else None)
        path = settings.ssh_config
        current = section.read(configfile.read_bytes(path) or b"", path=str(path))
        jobs = set(current.entries)
        if current.hook is not None:
            jobs.update(jobcache.cached_jobs(current.hook.state_dir))
    except (Exception, SystemExit):  # TAB must never show a traceback
        return []
    return sorted(job for job in jobs if job.startswith(incomplete))


def checked_job(value: str) -> str:
    """Every command's JOB is checked where it is parsed: one rule, one message, exit 2."""
    from rescale_ssh import validate

    return validate.job_id(value, source="the command line")


JobArg = Annotated[str, typer.Argument(help="Rescale job ID, e.g. Fotxeb (case-sensitive).",
                                       show_default=False, autocompletion=complete_jobs,
                                       callback=checked_job)]
DryRun = Annotated[
    bool, typer.Option("--dry-run", help="Show the change as a diff; write nothing.")
]
JsonOut = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def settings_of(ctx: typer.Context) -> Settings:
    """The Settings chosen by the global options."""
    obj = ctx.find_root().obj
    assert isinstance(obj, Settings)
    return obj


def open_client(settings: Settings) -> Client:
    """A platform client for the chosen platform and key (imports requests only now)."""
    from rescale_ssh.client import Client
    from rescale_ssh.settings import client_limits

    return Client(settings.platform(), settings.api_key(), **client_limits(60.0))


def confirm(diff: str, question: str, *, yes: bool) -> bool:
    """Show the planned change; ask only on a terminal (never when stdin is not one)."""
    if not diff:
        return True
    typer.echo(diff, nl=False)
    if yes or not sys.stdin.isatty():
        return True
    return typer.confirm(question, default=True)


def warn(message: str, hint: str | None = None) -> None:
    typer.echo(f"{PROG}: warning: {message}", err=True)
    if hint:
        typer.echo(f"hint: {hint}", err=True)
