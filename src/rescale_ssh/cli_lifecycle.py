"""Commands for the cluster lifecycle: jobs, status, wait, sync, prune, shell."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from rescale_ssh.cli_common import DryRun, JobArg, JsonOut, open_client, settings_of, warn
from rescale_ssh.cli_usage import REMOTE_COMMAND, SSH_OPTIONS, ShellCommand, within

if TYPE_CHECKING:
    from rescale_ssh.client import Client
    from rescale_ssh.settings import Settings
    from rescale_ssh.sync import SyncResult
    from rescale_ssh.target import Target

WaitTimeout = Annotated[float, typer.Option(
    "--timeout", metavar="SECONDS", callback=within(0), help="Give up after this many seconds.")]
WaitFlag = Annotated[bool, typer.Option(
    "--wait", help="First wait until the cluster accepts SSH (see `wait`).")]


def register(app: typer.Typer) -> None:
    app.command("jobs")(jobs)
    app.command("status")(status)
    app.command("wait")(wait)
    app.command("sync")(sync)
    app.command("prune")(prune)
    app.command("shell", cls=ShellCommand)(shell)


def jobs(ctx: typer.Context, json_out: JsonOut = False) -> None:
    """List your live jobs (owned and shared) and whether each accepts SSH.

    Lists the jobs that are not completed, and the newest 100 completed ones (a completed
    job's cluster may still be up), not your whole history. Running jobs come first. For each
    started cluster the head node is looked up, so the SSH column says `ready` only when ssh
    can connect. --json prints a list of objects with id, alias, name, owner, shared,
    submitted, status, cluster_status, ssh (ready, starting, stopped, not started), host, user,
    port and notes.

    Example: rescale-ssh jobs --json | jq -r '.[] | select(.ssh == "ready") | .alias'
    """
    from rescale_ssh import joblist, me, render, sync

    settings = settings_of(ctx)
    with open_client(settings) as client:
        rows = joblist.list_jobs(client, me=me.lookup(client, settings.api_key()),
                                 heads=sync.heads_in(settings))
    if json_out:
        typer.echo(render.as_json([render.job_dict(row) for row in rows]))
        return
    if not rows:
        typer.echo("No jobs on the platform.", err=True)
        return
    table = [("JOB", "STATUS", "CLUSTER", "SSH", "ALIAS", "NAME")]
    for row in rows:
        alias = row.alias if row.ssh == joblist.READY else "-"
        table.append((row.id, row.status, row.cluster, row.ssh, alias, row.name[:40]))
    typer.echo(render.columns(table))
    for row in rows:
        for note in row.notes:
            typer.echo(f"note: {note}", err=True)


def status(ctx: typer.Context, job: JobArg, json_out: JsonOut = False) -> None:
    """Show one job: statuses, cluster, head node, workers, SSH readiness.

    Statuses are listed newest first (by their dates). Each worker is shown with its route:
    direct (its own public address and port) or through the head (a private address); a node
    that offers no ssh is named in the notes. Also says whether the job has a block in your
    ssh config (`added`), is reached through the hook (`hook`), or neither. --json prints one
    object (job, alias, status, cluster_status, ssh, block, head, workers, workdir, statuses,
    cluster_statuses, problem, notes).

    Example: rescale-ssh status Fotxeb
    """
    from rescale_ssh import jobstatus, render

    settings = settings_of(ctx)
    block = _block_kind(settings, job)
    with open_client(settings) as client:
        report = jobstatus.report(client, job, block=block)
    data = jobstatus.as_dict(report)
    if json_out:
        typer.echo(render.as_json(data))
        return
    lines = [
        f"job        {report.job} ({report.status}; cluster {report.cluster})",
        f"ssh        {report.ssh}" + (f": {report.problem}" if report.problem else ""),
        f"block      {block}",
    ]
    if report.target is not None:
        t = report.target
        lines += [
            f"head node  {t.user}@{t.host} port {t.port}  (ssh {data['alias']})",
            f"workdir    {t.workdir}",
        ]
        lines += [f"worker     {w['alias']} → {w['host']} port {w['port']} "
                  f"({'through the head node' if w['via'] == 'head' else 'directly'})"
                  for w in data["workers"]]
    lines.append("statuses   " + ", ".join(
        f"{e.status} {e.date[:19].replace('T', ' ')}" for e in report.statuses[:8]))
    typer.echo("\n".join(lines))
    for note in report.notes:
        typer.echo(f"note: {note}", err=True)


def _block_kind(settings: Settings, job: str) -> str:
    from rescale_ssh import configfile, section, validate

    job = validate.job_id(job, source="the command line")
    path = settings.ssh_config
    current = section.read(configfile.read_bytes(path) or b"", path=str(path))
    if job in current.entries:
        return "added"
    return "hook" if current.hook is not None else "none"


def wait_for(client: Client, job: str, timeout: float) -> Target:
    """Wait with a progress display: a spinner on a terminal, plain lines otherwise."""
    from rescale_ssh import waiting

    spinner = "|/-\\"
    tty = sys.stderr.isatty()
    shown: list[str] = []

    def progress(elapsed: float, what: str) -> None:
        stamp = f"{int(elapsed) // 60}:{int(elapsed) % 60:02d}"
        if tty:
            frame = spinner[len(shown) % len(spinner)]
            shown.append(what)
            sys.stderr.write(f"\r{frame} {stamp} {what}\033[K")
            sys.stderr.flush()
        elif not shown or shown[-1] != what:
            shown.append(what)
            typer.echo(f"waiting ({stamp}): {what}", err=True)

    try:
        return waiting.wait_until_ready(client, job, timeout=timeout, progress=progress)
    finally:
        if tty and shown:
            sys.stderr.write("\r\033[K")


def wait(ctx: typer.Context, job: JobArg, timeout: WaitTimeout = 1800) -> None:
    """Wait until the job's cluster accepts SSH, showing progress.

    Ready means: the platform names the head node and its SSH port accepts TCP. Polls every
    5 s, backing off to 30 s. Exits 0 when ready; after --timeout (default 30 minutes) exits 7,
    naming the last status seen.

    Example: rescale-ssh wait Fotxeb --timeout 900 && ssh rescale-Fotxeb
    """
    with open_client(settings_of(ctx), polling=True) as client:
        target = wait_for(client, job, timeout)
    typer.echo(f"job {job} is ready: ssh {target.alias}")


def _report_sync(result: SyncResult, verb: Callable[[str], str]) -> None:
    from rescale_ssh import render

    if result.dry_run and result.change is not None:
        typer.echo(render.diff(result.change), nl=False)
    for job in result.added:
        typer.echo(f"{verb('added')} rescale-{job}")
    for job in result.updated:
        typer.echo(f"{verb('updated')} rescale-{job}")
    for job, why in result.dropped.items():
        typer.echo(f"{verb('dropped')} rescale-{job} ({why})")
    for job, why in result.skipped.items():
        warn(f"job {job} is running but has no usable head node: {why}")
    for note in result.notes:
        typer.echo(f"note: {note}", err=True)
    if not (result.added or result.updated or result.dropped):
        typer.echo("Nothing to change.")


def _verb(dry_run: bool) -> Callable[[str], str]:
    if dry_run:
        return lambda word: f"would be {word}:"
    return lambda word: word.capitalize()


def sync(ctx: typer.Context, dry_run: DryRun = False) -> None:
    """Add a block for every running job with SSH; drop those of stopped jobs.

    One command keeps the config in step with the platform. Dropped jobs also lose their host
    keys and anything the hook cached for them. Requests: the pages of the live jobs, one page
    of the newest completed ones, the instance pages of each running job (fetched 8 at a
    time), and one for each job with a block that neither list shows.

    Example: rescale-ssh sync --dry-run
    """
    from rescale_ssh import sync as syncing

    settings = settings_of(ctx)
    with open_client(settings) as client:
        result = syncing.sync(settings, client, dry_run=dry_run)
    _report_sync(result, _verb(dry_run))


def prune(ctx: typer.Context, dry_run: DryRun = False) -> None:
    """Drop the blocks (and host keys) of jobs whose cluster stopped.

    Like `sync`, but never adds: a job is dropped when its cluster is stopped or stopping, or
    when the platform no longer knows it. A job with a block that is not among the live jobs
    nor the newest completed ones is asked about directly.

    Example: rescale-ssh prune
    """
    from rescale_ssh import sync as syncing

    settings = settings_of(ctx)
    with open_client(settings) as client:
        result = syncing.sync(settings, client, add=False, dry_run=dry_run)
    _report_sync(result, _verb(dry_run))


def shell(
    ctx: typer.Context,
    job: JobArg,
    wait_first: WaitFlag = False,
    timeout: WaitTimeout = 1800,
    ssh_program: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--ssh", metavar="PROGRAM", hidden=True, help="ssh to run (tests).")] = None,
) -> None:
    """Open an interactive login shell in the job's working directory, or run a command there.

    Uses the job's block (or the hook); a job with neither is added first. ssh options go
    after JOB (e.g. port forwards: -L 8888:localhost:8888); words after `--` are a command
    run in the working directory instead of a shell (`cd WORKDIR && COMMAND`), each word
    passed as it is (quoted for the remote shell: for pipes or $VARS use sh -c '...'); the
    exit status is the command's. When the job has completed but its cluster is still up,
    says that the session ends when the cluster stops.

    Example: rescale-ssh shell Fotxeb -L 8888:localhost:8888 -- tail -f run.log
    """
    from rescale_ssh import shell as shell_module

    settings = settings_of(ctx)
    code = shell_module.run(settings, job, list(ctx.meta.get(SSH_OPTIONS, [])),
                            command=list(ctx.meta.get(REMOTE_COMMAND, [])), wait=wait_first,
                            timeout=timeout, ssh_program=ssh_program, waiter=wait_for,
                            notify=warn)
    raise typer.Exit(code)
