"""Pieces every command module shares: argument types, settings, the platform client."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from rescale_ssh.settings import Settings

if TYPE_CHECKING:
    from rescale_ssh.client import Client

PROG = "rescale-ssh"

JobArg = Annotated[str, typer.Argument(help="Rescale job ID, e.g. Fotxeb (case-sensitive).",
                                       show_default=False)]
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

    return Client(settings.platform(), settings.api_key())


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
