"""The Typer command line: parse, call one core function, render its result.

Nothing here decides anything the core could; errors are raised and reported by
:mod:`rescale_ssh.cli.boundary`.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any, Optional

import typer

from rescale_ssh import __version__
from rescale_ssh.cli import usage
from rescale_ssh.cli.boundary import PROG
from rescale_ssh.cli.common import (
    DryRun,
    ForceLine,
    FromLog,
    JobArg,
    JsonOut,
    Yes,
    approve,
    confirm,
    open_client,
    settings_of,
)
from rescale_ssh.errors import ExitCode, UsageError
from rescale_ssh.settings import Settings

app = typer.Typer(
    name=PROG,
    help="Turn every Rescale job into a real OpenSSH host: `ssh rescale-<JOB>`, scp, rsync "
    "and VS Code Remote-SSH just work with the system's own ssh.",
    no_args_is_help=True,
    add_completion=True,  # also registers the bash/zsh/fish/PowerShell completion classes
    # We hold API keys and passphrases: never print local variables in a traceback.
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"{PROG} {__version__}")
        raise typer.Exit()


def _log_requests() -> None:
    """--debug: the client's log on stderr, one line a request attempt. Only our loggers:
    a handler on the root logger also printed urllib3's line for each request (issue 15)."""
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PROG}: debug: %(message)s"))
    logger = logging.getLogger("rescale_ssh")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    logger.propagate = False


@app.callback()
def main(
    ctx: typer.Context,
    ssh_config: Annotated[Optional[str], typer.Option(  # noqa: UP045 - Typer needs Optional
        "--ssh-config", metavar="PATH",
        help="The ssh config file to manage [env: RESCALE_SSH_CONFIG; settings file: ssh_config; "
        "default: ~/.ssh/config].",
        show_default=False)] = None,
    platform: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--platform", metavar="URL-or-region",
        help="Platform base URL, or us, eu, jp, kr, itar, itar-gov [env: RESCALE_API_URL, "
        "then RESCALE_API_BASE_URL; settings file: platform; default: the profile's apibaseurl, "
        "else us].",
        show_default=False)] = None,
    profile: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--profile", metavar="NAME",
        help="Profile (section) of the Rescale CLI's ~/.config/rescale/apiconfig, or of "
        "$RESCALE_CONFIG_FILE [env: RESCALE_PROFILE; settings file: profile; default: [default], "
        "or in a file with no "
        "[default], its first section].",
        show_default=False)] = None,
    identity: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--identity", metavar="PATH",
        help="Private key written as IdentityFile [env: RESCALE_SSH_IDENTITY; settings file: "
        "identity; default: ~/.ssh/rescale_ed25519].", show_default=False)] = None,
    debug: Annotated[bool, typer.Option(
        "--debug", help="Show tracebacks and a log of requests (secrets masked).")] = False,
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Show the version and exit.")] = False,
) -> None:
    """Turn every Rescale job into a real OpenSSH host.

    `rescale-ssh add JOB` writes a Host block for the job into a marked section of your ssh
    config; then `ssh rescale-JOB`, scp, rsync and VS Code Remote-SSH use it directly.
    """
    if debug or os.environ.get("RESCALE_SSH_DEBUG") == "1":
        _log_requests()
    ctx.obj = Settings(ssh_config_flag=ssh_config, platform_flag=platform,
                       profile_flag=profile, identity_flag=identity, use_file=True)
    asks_help = bool({"--help", "-h"} & set(sys.argv))
    # `config` checks what it writes itself: it must be able to repair a bad settings file.
    if ctx.invoked_subcommand not in (None, "hook", "proxy", "config") and not asks_help:
        from rescale_ssh.cli.common import guard

        guard(ctx.obj, ctx.invoked_subcommand)


@app.command()
def add(
    ctx: typer.Context,
    job: JobArg,
    from_log: FromLog = None,
    force: ForceLine = False,
    dry_run: DryRun = False,
    wait: Annotated[bool, typer.Option(
        "--wait", help="Wait until the cluster accepts SSH first (see `wait`).")] = False,
    timeout: Annotated[float, typer.Option(
        "--timeout", metavar="SECONDS", callback=usage.within(0),
        help="With --wait: give up after this many seconds.")] = 1800,
) -> None:
    """Resolve a job to user@host and write its Host block.

    The job is looked up on the platform (its nodes, then its logs for the working directory
    and, when every node's role is CUSTOM, to tell which node is the head: the one its
    "ready for ssh access" line names), or taken from a pasted log line with --from-log. Every
    other node gets a block rescale-JOB-N: at its own public address and port (behind NAT, the
    port forwarded to it), else at its private address through the head. Running it again
    refreshes the blocks; a job whose cluster is not up yet is reported with its status.
    Warns when the cluster was launched with a key other than yours (--identity), one more
    request the first time (the job detail).

    Example: rescale-ssh add Fotxeb && ssh rescale-Fotxeb
    """
    from rescale_ssh.cli import render
    from rescale_ssh.platform import resolver
    from rescale_ssh.sshconfig import hosts

    settings = settings_of(ctx)
    verdict = None
    if from_log is not None:
        text = sys.stdin.read() if from_log == "-" else from_log
        target = resolver.from_log(job, text, source="--from-log", force=force)
    else:
        from rescale_ssh import validate

        validate.job_id(job, source="the command line")
        with open_client(settings, polling=wait) as client:
            if wait:
                from rescale_ssh.cli.lifecycle import wait_for

                wait_for(client, job, timeout)
            target = resolver.resolve(client, job)
            from rescale_ssh.platform import launchkey

            verdict = launchkey.check(client, job, settings.identity)
    result = hosts.add(settings, target, dry_run=dry_run)
    if verdict is not None and verdict.message(job):
        from rescale_ssh.cli.common import warn
        from rescale_ssh.platform.launchkey import HINT

        warn(verdict.message(job) or "", HINT)  # the block is written: the identity may change
    if dry_run:
        typer.echo(render.diff(result.change) or f"{result.entry.alias}: no change",
                   nl=not result.change.changed)
        if result.change.changed:  # on stderr: stdout is the diff, for a pipe
            typer.echo(f"Dry run: nothing was written; without --dry-run this adds "
                       f"{result.entry.alias} to {settings.ssh_config}.", err=True)
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
    typer.echo(f"  rsync -a ./data/ {hosts.remote_path(t.alias, t.workdir, None)}/")
    if result.identity_missing:
        typer.echo(
            f"{PROG}: warning: the identity file {result.entry.identity} does not exist\n"
            "hint: `rescale-ssh key generate` makes one (paste its public key into Job Settings "
            "before submitting), or pass --identity PATH",
            err=True,
        )


@app.command()
def remove(ctx: typer.Context, job: JobArg, dry_run: DryRun = False, yes: Yes = False) -> None:
    """Remove a job's Host block and forget its host keys (and its PuTTY session).

    The PuTTY session goes only when rescale-ssh wrote it and it was not changed since. The
    section disappears with its last block, leaving the file as it was before the first
    `add`. Removing a job that has no block is not an error. Shows the change and asks first;
    without a terminal it refuses unless --yes.

    Example: rescale-ssh remove Fotxeb --yes
    """
    from rescale_ssh.cli import render
    from rescale_ssh.cli.putty import drop_sessions, has_session
    from rescale_ssh.sshconfig import hosts

    settings = settings_of(ctx)
    plan = hosts.remove(settings, job, dry_run=True)
    if dry_run:
        typer.echo(render.diff(plan.change) or f"rescale-{plan.job}: no change",
                   nl=not plan.change.changed)
        drop_sessions([plan.job], dry_run=True)
        return
    session = has_session(plan.job)
    if plan.change.changed or plan.forgotten_keys or session:
        what = (f"the block of rescale-{plan.job} from {settings.ssh_config}"
                if plan.change.changed else f"the host keys of rescale-{plan.job}"
                if plan.forgotten_keys else f"the PuTTY session rescale-{plan.job}")
        if not approve("remove", what, render.diff(plan.change),
                       f"Change {settings.ssh_config}?", yes=yes):
            raise typer.Exit(int(ExitCode.FAILURE))
    result = hosts.remove(settings, job)
    if result.removed is None:
        typer.echo(f"rescale-{result.job} is not in {settings.ssh_config}; nothing to remove")
    else:
        typer.echo(f"Removed rescale-{result.job} from {settings.ssh_config}")
    drop_sessions([result.job], dry_run=False)  # its PuTTY session too, when ours


@app.command("list")
def list_(ctx: typer.Context, json_out: JsonOut = False) -> None:
    """List the jobs that have a Host block.

    Reads only the local ssh config: no network. --json prints a list of objects with job,
    alias, user, host, port, workdir, identity and known_hosts.

    Example: rescale-ssh list --json
    """
    from rescale_ssh.cli import render
    from rescale_ssh.sshconfig import hosts

    entries = hosts.entries(settings_of(ctx))
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
        metavar="SUBPATH", help="Path below the working directory.", show_default=False)] = None,
) -> None:
    """Print rescale-JOB:<working directory>[/SUBPATH] for scp and rsync.

    The working directory comes from the job's block, or from what the hook learned of the
    job. Nothing is checked on the cluster: the path is printed for you to use.

    Example: rsync -a results/ "$(rescale-ssh path Fotxeb results)"
    """
    from rescale_ssh.sshconfig import hosts

    where = hosts.locate(settings_of(ctx), job)
    if subpath is not None and any(ord(c) < 32 for c in subpath):
        raise UsageError("SUBPATH contains control characters")
    typer.echo(hosts.remote_path(where.alias, where.workdir, subpath))


@app.command()
def install(
    ctx: typer.Context,
    dry_run: DryRun = False,
    yes: Yes = False,
    timeout: Annotated[float, typer.Option(
        "--timeout", metavar="SECONDS", callback=usage.within(1, 120),
        help="Longest the hook may spend resolving a job through the platform, in seconds "
        "(1 to 120).")] = 10,
    wait: Annotated[float, typer.Option(
        "--wait", metavar="SECONDS", callback=usage.within(0, 3600),
        help="How long ssh waits for a booting cluster to accept connections, in seconds "
        "(0 to 3600).")] = 0,
) -> None:
    """Let `ssh rescale-<any job>` work without `add` (the just-in-time hook).

    Marks the rescale-ssh section at the top of your ssh config as holding the hook; the
    section's Include then runs `rescale-ssh hook` for names starting with rescale- that have
    no block, and never for your own hosts named like that (they are listed). Run it again to
    repair the hook (after an upgrade, a moved Python, a lost state folder): it says what it
    repaired. Shows the change and asks first, unless --yes or stdin is not a terminal.

    Example: rescale-ssh install --yes && ssh rescale-Fotxeb
    """
    from rescale_ssh.cli import render
    from rescale_ssh.sshconfig import install as installer

    settings = settings_of(ctx)
    plan = installer.install(settings, dry_run=True, timeout=timeout, wait=wait)
    if dry_run:
        typer.echo(render.diff(plan.change) or "the hook is already installed; no change",
                   nl=not plan.change.changed)
        return
    if not confirm(render.diff(plan.change), f"Change {settings.ssh_config}?", yes=yes):
        raise typer.Exit(int(ExitCode.FAILURE))
    result = installer.install(settings, timeout=timeout, wait=wait)
    if not result.was_installed:
        typer.echo(f"Installed the rescale-ssh hook in {settings.ssh_config}; "
                   "try `ssh rescale-<JOB>`")
    elif result.repaired or result.change.changed:
        typer.echo(f"Repaired the rescale-ssh hook in {settings.ssh_config}:")
        for note in result.repaired or ["rewrote the rescale-ssh section"]:
            typer.echo(f"  - {note}")
    else:
        typer.echo(f"Already installed in {settings.ssh_config}; nothing needed repair")
    for claim in result.left_alone:
        typer.echo(f"Left alone your own host {claim.name} ({claim.where()}): the hook never "
                   "runs for it")
    if result.shell_files.made:
        typer.echo("Linked shell completion and the man page: "
                   + ", ".join(result.shell_files.made))
    for failed in result.shell_files.failed:
        from rescale_ssh.cli.common import warn

        warn(f"could not link {failed}", "see `Shell completion` in the README")


@app.command()
def uninstall(ctx: typer.Context, dry_run: DryRun = False, yes: Yes = False) -> None:
    """Remove the hook, every rescale-ssh block, and the tool's own files.

    Leaves your ssh config byte-for-byte as it was before rescale-ssh changed it (when nothing
    else changed it). Also removes the tool's known_hosts, cache and hook settings, the PuTTY
    sessions it wrote (not those changed in PuTTY since), and its state folder when nothing
    else is left in it. Shows the change and asks first; without a terminal it refuses
    unless --yes.

    Example: rescale-ssh uninstall --yes
    """
    from rescale_ssh.cli import render
    from rescale_ssh.sshconfig import install as installer

    settings = settings_of(ctx)
    plan = installer.uninstall(settings, dry_run=True)
    if dry_run:
        typer.echo(render.diff(plan.change) or "nothing of rescale-ssh in the config",
                   nl=not plan.change.changed)
        for name in plan.removed_files:
            typer.echo(f"would remove {name}")
        return
    if yes:
        typer.echo(render.diff(plan.change), nl=False)  # what it removes, as before
    elif (plan.change.changed or plan.removed_files) and not approve(
            "uninstall", installer.describe(plan, settings), render.diff(plan.change),
            f"Change {settings.ssh_config}?", yes=yes):
        raise typer.Exit(int(ExitCode.FAILURE))
    result = installer.uninstall(settings)
    typer.echo(f"Removed rescale-ssh from {settings.ssh_config}"
               if result.change.changed else f"Nothing of rescale-ssh in {settings.ssh_config}")


_PASSTHROUGH = {"ignore_unknown_options": True, "allow_extra_args": True,
                "help_option_names": []}


def _internal_help(ctx: typer.Context) -> None:
    """`hook --help`, `proxy -h`: their own help (they take ssh's arguments as they come, so
    Click's help option is off), instead of "invalid job ID '--help'"."""
    if list(ctx.args) in (["--help"], ["-h"]):
        typer.echo(ctx.get_help())
        raise typer.Exit(0)


@app.command(context_settings=_PASSTHROUGH, add_help_option=False, hidden=True)
def hook(ctx: typer.Context) -> None:
    """Make rescale-ALIAS resolvable in this ssh run (called by ssh from `Match exec`).

    Usage: rescale-ssh hook [--state DIR] ALIAS. Not for people: `rescale-ssh install` puts it
    in the ssh config. Its warm path uses only the standard library and no network.

    Example: ssh -G rescale-Fotxeb (runs it)
    """
    _internal_help(ctx)
    from rescale_ssh.hook.matcher import main as hook_main

    raise typer.Exit(hook_main(list(ctx.args)))


@app.command(context_settings=_PASSTHROUGH, add_help_option=False, hidden=True)
def proxy(ctx: typer.Context) -> None:
    """Connect to HOST PORT and hand the socket to ssh (ProxyCommand, ProxyUseFdpass yes).

    Usage: rescale-ssh proxy [--wait SECONDS] [--state DIR --job JOB] HOST PORT. With fd
    passing no byte of the session goes through Python; where that is impossible it relays.

    Example: ProxyCommand rescale-ssh proxy --wait 300 %h %p
    """
    _internal_help(ctx)
    from rescale_ssh.hook.proxy import main as proxy_main

    raise typer.Exit(proxy_main(list(ctx.args)))


@app.command()
def code(ctx: typer.Context, job: JobArg) -> None:
    """Open VS Code (Remote-SSH) on the job's working directory.

    Runs `code --folder-uri vscode-remote://ssh-remote+rescale-JOB<workdir>`. The job needs a
    block (`rescale-ssh add JOB`) or the hook (`rescale-ssh install`). Warns first when the
    cluster is known (from `add`, `sync`, `status`) to have been launched with another key.

    Example: rescale-ssh code Fotxeb
    """
    from rescale_ssh.cli import vscode
    from rescale_ssh.sshconfig import hosts

    settings = settings_of(ctx)
    where = hosts.locate(settings, job)
    refused = vscode.refusal(settings, job)
    if refused:
        from rescale_ssh.cli.common import warn
        from rescale_ssh.platform.launchkey import HINT

        warn(refused, HINT)
    vscode.open_folder(where.alias, where.workdir, say=typer.echo)


def _register_command_modules() -> None:
    """Each capability keeps its commands in a module of its own (cli/<noun>.py)."""
    from rescale_ssh.cli import config, forward, keys, lifecycle, putty

    keys.register(app)
    lifecycle.register(app)
    config.register(app)
    forward.register(app)
    putty.register(app)


_register_command_modules()
usage.use_global_help(app)  # every command's help ends with the global options


# Typer's own completion installer edits ~/.bashrc (and uninstall could not undo it); `install`
# links the shipped scripts instead (shellfiles.py). Kept working, hidden from help.
TYPER_COMPLETION_OPTIONS = ("install_completion", "show_completion")


def click_command() -> Any:
    """The Click command of the app, as run, documented and completed."""
    command = typer.main.get_command(app)  # (registers Typer's completion classes)
    for param in command.params:
        if param.name in TYPER_COMPLETION_OPTIONS:
            setattr(param, "hidden", True)  # options have it (Parameter's type does not)  # noqa: B010
    return command


def run(args: list[str]) -> int:
    """Run the Typer app; Click's usage errors become ours (boundary.py reports them, exit 2)
    instead of Click's usage block and ``Error: ...``."""
    command = click_command()
    from rescale_ssh.cli import completion

    completion.register()  # ours instead: global options complete after the command too
    import signal

    from rescale_ssh.cli.boundary import on_interrupt

    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, on_interrupt)  # ^C reaches the boundary, which says so
    try:
        code = command.main(args=usage.hoist_globals(args), prog_name=PROG, standalone_mode=False)
    except usage.NoArgsIsHelpError as exc:  # bare `rescale-ssh`: the help, exit 2
        exc.show()
        return int(exc.exit_code)
    except usage.ClickException as exc:
        raise usage.usage_error(exc) from None
    except usage.Abort as exc:  # ^C, or end of input (Ctrl-D), at a prompt
        if isinstance(exc.__context__, EOFError):
            raise UsageError("end of input at a prompt: nothing was changed",
                             "answer the prompt, or give the answer as an option (see the "
                             "command's --help)") from None
        raise KeyboardInterrupt from None
    except SystemExit as exc:  # completion (_RESCALE_SSH_COMPLETE) exits by itself
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return code if isinstance(code, int) else 0
