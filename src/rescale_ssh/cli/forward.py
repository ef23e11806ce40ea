"""The `forward` command: one-off port forwards to a job, or forwards saved in its block."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from rescale_ssh.cli.boundary import PROG
from rescale_ssh.cli.common import DryRun, JobArg, JsonOut, open_client, settings_of, warn
from rescale_ssh.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from rescale_ssh.cli.tunnel import Ended
    from rescale_ssh.settings import Settings
    from rescale_ssh.sshconfig.forwards import Located, Spec
    from rescale_ssh.sshconfig.hostblock import Forward
    from rescale_ssh.target import Target

ARROW = "  →  "


def register(app: typer.Typer) -> None:
    app.command("forward")(forward)


def forward(
    ctx: typer.Context,
    job: JobArg,
    specs: Annotated[Optional[list[str]], typer.Argument(  # noqa: UP045 - Typer needs Optional
        metavar="SPEC", help="REMOTE_PORT[:LOCAL_PORT], or HOST:REMOTE_PORT[:LOCAL_PORT] "
        "(HOST: wN for worker N, or a name or address the head node reaches).",
        show_default=False)] = None,
    save: Annotated[bool, typer.Option(
        "--save", help="Save the forwards in the job's block (LocalForward) instead: they "
        "listen whenever an ssh session to the job is open (VS Code, ssh).")] = False,
    remove: Annotated[bool, typer.Option(
        "--remove", help="Remove saved forwards (by local port, or by REMOTE_PORT / "
        "HOST:REMOTE_PORT).")] = False,
    dry_run: DryRun = False,
    json_out: JsonOut = False,
    ssh_program: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--ssh", metavar="PROGRAM", hidden=True, help="ssh to run (tests).")] = None,
) -> None:
    """Forward local ports to ports on the job's cluster (Jupyter, TensorBoard, pvserver).

    Each SPEC is REMOTE_PORT[:LOCAL_PORT] (on the head node) or HOST:REMOTE_PORT[:LOCAL_PORT]:
    HOST is wN for worker N, or any name or address the head node reaches; it is reached
    from the head node, over the head's connection. The local port is the remote one when
    free, else the next free one, never one saved for another job; it listens on 127.0.0.1
    only. Prints one line a forward (its local URL), then holds them until Ctrl-C (exit 130),
    which removes them. Uses the job's running ssh master when there is one (ControlMaster),
    else a connection of its own. The job needs a block or the hook; one with neither is
    added first. With --save the forwards go into the job's block as LocalForward lines
    instead, kept by `add` and `sync`: VS Code shows them in its Ports panel, and they
    listen while any ssh session to the job is open. --remove takes saved ones out. With no
    SPEC, lists the saved forwards (--json: local, url, host, port, to).

    Example: rescale-ssh forward Fotxeb 8888   (then open http://localhost:8888)
    """
    from rescale_ssh.sshconfig import forwards as fw

    settings = settings_of(ctx)
    parsed = [fw.parse(text) for text in specs or []]
    if save and remove:
        raise UsageError("--save and --remove do not go together",
                         f"rescale-ssh forward {job} SPEC --save, or --remove SPEC")
    if (save or remove) and not parsed:
        flag = "--save" if save else "--remove"
        raise UsageError(f"{flag} needs the forwards: SPEC...",
                         f"e.g. rescale-ssh forward {job} 8888 {flag}")
    if not parsed:
        _list(settings, job, json_out)
        return
    located = fw.locate(settings, job, open_client)
    if located.added:
        warn(f"added {located.target.alias} to {settings.ssh_config}")
    if save or remove:
        _save(settings, located, parsed, remove=remove, dry_run=dry_run)
        return
    chosen = fw.one_off(located, parsed)
    from rescale_ssh.cli import tunnel

    def opened(ended: Ended) -> None:
        how = "the running ssh master of" if ended.shared else "a connection to"
        typer.echo(f"Forwarding through {how} {located.target.alias}; Ctrl-C ends it.",
                   err=True)  # first: a script that saw the URLs has seen this line too
        _print(chosen, located.target)

    ended = tunnel.run(settings, located.target.alias, chosen, opened=opened,
                       ssh_program=ssh_program)
    _ended(ended, located.target)


def _print(forwards: list[Forward], target: Target) -> None:
    from rescale_ssh.sshconfig import forwards as fw

    for forward in forwards:
        typer.echo(f"{fw.url(forward[0])}{ARROW}{fw.describe(forward, target)}")


def _ended(ended: Ended, target: Target) -> None:
    if ended.signal is not None:
        typer.echo(f"{PROG}: interrupted: closed the forwards to {target.alias}", err=True)
        raise typer.Exit(int(ExitCode.INTERRUPTED) if ended.signal == 2 else 128 + ended.signal)
    if ended.code == 255:  # ssh(1): it could not connect or log in, or lost the connection
        warn(f"ssh could not connect to {target.alias} or log in, or lost the connection "
             f"(exit 255): `rescale-ssh doctor {target.job}` says why")
    raise typer.Exit(ended.code or int(ExitCode.FAILURE))


def _save(settings: Settings, located: Located, specs: list[Spec], *, remove: bool,
          dry_run: bool) -> None:
    from rescale_ssh.cli import render
    from rescale_ssh.sshconfig import forwards as fw

    result = fw.save(settings, located, specs, remove=remove, dry_run=dry_run)
    if dry_run:
        typer.echo(render.diff(result.change) or f"{located.target.alias}: no change",
                   nl=not result.change.changed)
        return
    verb = "Removed" if remove else ("Saved" if result.change.changed else "Already saved")
    for forward in result.forwards:
        typer.echo(f"{verb} {fw.url(forward[0])}{ARROW}{fw.describe(forward, located.target)}")
    if not remove:
        typer.echo(f"They listen while an ssh session to {located.target.alias} is open "
                   f"(VS Code, ssh; or `ssh -N {located.target.alias}`).", err=True)
    for port in result.busy:
        warn(f"something on this machine already listens on local port {port}: ssh will warn "
             "that it cannot bind it until that program stops",
             f"or choose another: rescale-ssh forward {located.target.job} --remove {port}, "
             "then --save REMOTE_PORT:LOCAL_PORT")


def _list(settings: Settings, job: str, json_out: bool) -> None:
    from rescale_ssh.cli import render
    from rescale_ssh.errors import NotFoundError
    from rescale_ssh.sshconfig import forwards as fw
    from rescale_ssh.sshconfig import hosts

    try:
        entry = hosts.find(settings, job)
        saved, target = list(entry.forwards), entry.target
    except NotFoundError:
        saved, target = [], None
    if json_out:
        typer.echo(render.as_json([
            {"local": f[0], "url": fw.url(f[0]), "host": f[1], "port": f[2],
             "to": fw.describe(f, target) if target is not None else None} for f in saved]))
        return
    if target is None or not saved:
        typer.echo(f"No saved forwards for rescale-{job}; open one with `rescale-ssh forward "
                   f"{job} 8888`, or save it in the block with --save.", err=True)
        return
    _print(saved, target)
