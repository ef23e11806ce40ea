"""The Typer command line: parse, call one core function, render its result.

Nothing here decides anything the core could; errors are raised and reported by
:mod:`rescale_ssh.boundary`.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated, Optional

import typer

from rescale_ssh import __version__, hosts, render
from rescale_ssh.boundary import PROG
from rescale_ssh.errors import UsageError
from rescale_ssh.settings import Settings

app = typer.Typer(
    name=PROG,
    help="Turn every Rescale job into a real OpenSSH host: `ssh rescale-<JOB>`, scp, rsync "
    "and VS Code Remote-SSH just work with the system's own ssh.",
    no_args_is_help=True,
    add_completion=False,
    # We hold API keys and passphrases: never print local variables in a traceback.
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,
)

# Global options may be given after the command too (`rescale-ssh add JOB --ssh-config F`):
# run() moves them in front, where Click expects them.
GLOBAL_VALUE_OPTIONS = ("--ssh-config", "--platform", "--profile", "--identity")
GLOBAL_FLAGS = ("--debug",)

JobArg = Annotated[str, typer.Argument(help="Rescale job ID, e.g. Fotxeb (case-sensitive).",
                                       show_default=False)]
DryRun = Annotated[
    bool, typer.Option("--dry-run", help="Show the change as a diff; write nothing.")
]
JsonOut = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"{PROG} {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    ssh_config: Annotated[Optional[str], typer.Option(  # noqa: UP045 - Typer needs Optional
        "--ssh-config", metavar="PATH",
        help="The ssh config file to manage [env: RESCALE_SSH_CONFIG; default: ~/.ssh/config].",
        show_default=False)] = None,
    platform: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--platform", metavar="URL-or-region",
        help="Platform base URL, or us, eu, jp, kr, itar, itar-gov [env: RESCALE_API_URL].",
        show_default=False)] = None,
    profile: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--profile", metavar="NAME",
        help="Section of the Rescale CLI's ~/.config/rescale/apiconfig [env: RESCALE_PROFILE].",
        show_default=False)] = None,
    identity: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--identity", metavar="PATH",
        help="Private key written as IdentityFile [env: RESCALE_SSH_IDENTITY; "
        "default: ~/.ssh/rescale_ed25519].", show_default=False)] = None,
    debug: Annotated[bool, typer.Option(
        "--debug", help="Show tracebacks and a log of requests (secrets masked).")] = False,
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Show the version and exit.")] = False,
) -> None:
    """Turn every Rescale job into a real OpenSSH host.

    `rescale-ssh add JOB` writes a Host block for the job into a marked section of your ssh
    config; then `ssh rescale-JOB`, scp, rsync and VS Code Remote-SSH use it directly.
    """
    if debug:
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr,
                            format=f"{PROG}: debug: %(message)s")
    ctx.obj = Settings(ssh_config_flag=ssh_config, platform_flag=platform,
                       profile_flag=profile, identity_flag=identity)


def _settings(ctx: typer.Context) -> Settings:
    obj = ctx.find_root().obj
    assert isinstance(obj, Settings)
    return obj


@app.command()
def add(
    ctx: typer.Context,
    job: JobArg,
    from_log: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--from-log", metavar="TEXT",
        help="The job's 'Instance ready for ssh access' log line, or '-' to read a pasted log "
        "from stdin. Needs no API key.", show_default=False)] = None,
    dry_run: DryRun = False,
) -> None:
    """Resolve a job to user@host and write its Host block.

    The job is looked up on the platform (its head node, then its logs for the working
    directory), or taken from a pasted log line with --from-log. Running it again refreshes the
    block; a job whose cluster is not up yet is reported with its status.

    Example: rescale-ssh add Fotxeb && ssh rescale-Fotxeb
    """
    from rescale_ssh import resolver

    settings = _settings(ctx)
    if from_log is not None:
        text = sys.stdin.read() if from_log == "-" else from_log
        target = resolver.from_log(job, text, source="--from-log")
    else:
        from rescale_ssh import validate
        from rescale_ssh.client import Client

        validate.job_id(job, source="the command line")
        with Client(settings.platform(), settings.api_key()) as client:
            target = resolver.resolve(client, job)
    result = hosts.add(settings, target, dry_run=dry_run)
    if dry_run:
        typer.echo(render.diff(result.change) or f"{result.entry.alias}: no change",
                   nl=not result.change.changed)
        return
    t = target
    if not result.change.changed:
        verb = "Unchanged"
    elif result.previous is None:
        verb = "Added"
    else:
        verb = "Updated"
    typer.echo(f"{verb} {t.alias} → {t.user}@{t.host} port {t.port} in {settings.ssh_config}")
    typer.echo(f"  ssh {t.alias}")
    typer.echo(f"  rsync -a ./data/ {hosts.remote_path(result.entry, None)}/")
    if result.identity_missing:
        typer.echo(
            f"{PROG}: warning: the identity file {result.entry.identity} does not exist\n"
            "hint: `rescale-ssh key generate` makes one (paste its public key into Job Settings "
            "before submitting), or pass --identity PATH",
            err=True,
        )


@app.command()
def remove(ctx: typer.Context, job: JobArg, dry_run: DryRun = False) -> None:
    """Remove a job's Host block and forget its host keys.

    The section disappears with its last block, leaving the file as it was before the first
    `add`. Removing a job that has no block is not an error.

    Example: rescale-ssh remove Fotxeb
    """
    settings = _settings(ctx)
    result = hosts.remove(settings, job, dry_run=dry_run)
    if dry_run:
        typer.echo(render.diff(result.change) or f"rescale-{result.job}: no change",
                   nl=not result.change.changed)
        return
    if result.removed is None:
        typer.echo(f"rescale-{result.job} is not in {settings.ssh_config}; nothing to remove")
    else:
        typer.echo(f"Removed rescale-{result.job} from {settings.ssh_config}")


@app.command("list")
def list_(ctx: typer.Context, json_out: JsonOut = False) -> None:
    """List the jobs that have a Host block.

    Reads only the local ssh config: no network. --json prints a list of objects with job,
    alias, user, host, port, workdir, identity and known_hosts.

    Example: rescale-ssh list --json
    """
    entries = hosts.entries(_settings(ctx))
    if json_out:
        typer.echo(render.as_json([render.entry_dict(e) for e in entries]))
    elif entries:
        typer.echo(render.table(entries))
    else:
        typer.echo("No Rescale jobs in the ssh config yet; add one with `rescale-ssh add JOB`.",
                   err=True)


@app.command()
def path(
    ctx: typer.Context,
    job: JobArg,
    subpath: Annotated[Optional[str], typer.Argument(  # noqa: UP045
        metavar="[SUBPATH]", help="Path below the working directory.", show_default=False)] = None,
) -> None:
    """Print rescale-JOB:<working directory>[/SUBPATH] for scp and rsync.

    Example: rsync -a results/ "$(rescale-ssh path Fotxeb results)"
    """
    entry = hosts.find(_settings(ctx), job)
    if subpath is not None and any(ord(c) < 32 for c in subpath):
        raise UsageError("SUBPATH contains control characters")
    typer.echo(hosts.remote_path(entry, subpath))


def hoist_globals(args: list[str]) -> list[str]:
    """Move global options that follow the command name in front of it."""
    stop = args.index("--") if "--" in args else len(args)
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < stop:
        arg = args[i]
        name = arg.split("=", 1)[0]
        if name in GLOBAL_VALUE_OPTIONS and "=" not in arg and i + 1 < stop:
            front += args[i : i + 2]
            i += 2
            continue
        if name in GLOBAL_VALUE_OPTIONS or arg in GLOBAL_FLAGS:
            front.append(arg)
        else:
            rest.append(arg)
        i += 1
    return front + rest + args[stop:]


def run(args: list[str]) -> int:
    try:
        app(args=hoist_globals(args), prog_name=PROG)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0
