"""Commands for the cluster lifecycle: jobs, status, wait, sync, prune, shell."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from rescale_ssh.cli.boundary import PROG, Interrupted
from rescale_ssh.cli.common import DryRun, JobArg, JsonOut, Yes, open_client, settings_of, warn
from rescale_ssh.cli.usage import REMOTE_COMMAND, SSH_OPTIONS, ShellCommand, within
from rescale_ssh.errors import ExitCode

if TYPE_CHECKING:
    from rescale_ssh.platform import launchkey
    from rescale_ssh.platform.client import Client
    from rescale_ssh.platform.waiting import Poll
    from rescale_ssh.settings import Settings
    from rescale_ssh.sshconfig.sync import SyncResult
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


def jobs(
    ctx: typer.Context,
    json_out: JsonOut = False,
    check_keys: Annotated[bool, typer.Option(
        "--check-keys", help="Also ask each ready job which SSH key its cluster was launched "
        "with (one request a job not checked before).")] = False,
) -> None:
    """List your live jobs (owned and shared) and whether each accepts SSH.

    Lists the jobs that are not completed, and the newest 100 completed ones (a completed
    job's cluster may still be up), not your whole history. Running jobs come first. For each
    started cluster the head node is looked up, so the SSH column says `ready` only when ssh
    can connect. A ready job whose cluster was launched with a key other than yours (--identity)
    gets a warning: what `add`, `sync`, `status` or --check-keys learned of it costs no request;
    --check-keys asks the others. --json prints a list of objects with id, alias, name, owner,
    shared, submitted, status, cluster_status, ssh (ready, starting, stopped, not started),
    host, user, port, launch_key (matches, differs, unknown) and notes.

    Example: rescale-ssh jobs --json | jq -r '.[] | select(.ssh == "ready") | .alias'
    """
    from rescale_ssh.cli import render
    from rescale_ssh.platform import joblist, me
    from rescale_ssh.sshconfig import sync

    settings = settings_of(ctx)
    with open_client(settings) as client:
        rows = joblist.list_jobs(client, me=me.lookup(client, settings.api_key()),
                                 heads=sync.heads_in(settings))
        rows, differ = joblist.with_launch_keys(client, rows, settings.identity,
                                                fetch=check_keys)
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
    _warn_keys(differ)


def _warn_keys(differ: dict[str, launchkey.Verdict]) -> None:
    """One warning a job whose cluster was launched with another key; the fix once."""
    from rescale_ssh.platform.launchkey import HINT

    for index, (job, verdict) in enumerate(sorted(differ.items())):
        warn(verdict.message(job) or job, HINT if index == len(differ) - 1 else None)


def status(ctx: typer.Context, job: JobArg, json_out: JsonOut = False) -> None:
    """Show one job: statuses, cluster, head node, workers, SSH readiness.

    Statuses are listed newest first (by their dates). Each worker is shown with its route:
    direct (its own public address and port) or through the head (a private address); a node
    that offers no ssh is named in the notes. Also says whether the job has a block in your
    ssh config (`added`), is reached through the hook (`hook`), or neither, and whether the
    cluster was launched with your key (the block's identity): a cluster launched with another
    key refuses yours (Permission denied (publickey)) until the job is submitted again with
    yours in Job Settings. Times are UTC. --json prints one object (job, alias, status,
    cluster_status, ssh, block, head, workers, workdir, statuses and cluster_statuses with
    ISO 8601 dates, problem, launch_key: matches, differs or unknown, notes).

    Example: rescale-ssh status Fotxeb
    """
    from rescale_ssh.cli import render
    from rescale_ssh.platform import jobstatus

    settings = settings_of(ctx)
    block, identity = _block_kind(settings, job)
    with open_client(settings) as client:
        report = jobstatus.report(client, job, block=block, identity=identity)
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
    if report.launch_key.summary() is not None:
        lines.append(f"launch key {report.launch_key.summary()}")
    lines.append("statuses   " + ", ".join(
        f"{e.status} {e.shown_date()}" for e in report.statuses[:8]))
    typer.echo("\n".join(lines))
    for note in report.notes:
        typer.echo(f"note: {note}", err=True)


def _block_kind(settings: Settings, job: str) -> tuple[str, str]:
    """How the job is reached, and the identity ssh offers it (its block's, else ours)."""
    from rescale_ssh import configfile, validate
    from rescale_ssh.sshconfig import section

    job = validate.job_id(job, source="the command line")
    path = settings.ssh_config
    current = section.read(configfile.read_bytes(path) or b"", path=str(path))
    if job in current.entries:
        return "added", current.entries[job].identity or settings.identity
    return "hook" if current.hook is not None else "none", settings.identity


class _Seen:
    """What `wait` knows between two polls, for its live line (or its plain lines)."""

    def __init__(self, started: float, *, plain: bool) -> None:
        self.started = started
        self.next_at = started
        self.status = "asking the platform"
        self.plain = plain
        self.printed = ""

    def poll(self, poll: Poll) -> None:
        self.status = poll.status
        self.next_at = time.monotonic() + poll.next_in
        if self.plain and poll.what != self.printed:  # logs, CI: one line per change
            self.printed = poll.what
            stamp = f"{int(poll.elapsed) // 60}:{int(poll.elapsed) % 60:02d}"
            typer.echo(f"waiting ({stamp}): {poll.what}", err=True)


def wait_for(client: Client, job: str, timeout: float) -> Target:
    """Wait with a progress display: on a terminal a live line redrawn between polls
    (elapsed time, the job's status, the countdown to the next check); otherwise one plain
    line per status change. Ctrl-C says what it interrupted, in one line, and exits 130."""
    from rescale_ssh.cli import progress
    from rescale_ssh.platform import waiting

    live = progress.is_terminal(sys.stderr)
    seen = _Seen(time.monotonic(), plain=not live)

    def text() -> str:
        now = time.monotonic()
        dot = "·" if line.unicode else "-"
        left = seen.next_at - now
        check = f"next check in {progress.duration(left + 0.999)}" if left > 0 else "checking"
        return (f"{job}: {seen.status} {dot} {progress.duration(now - seen.started)} elapsed "
                f"{dot} {check}")

    line = progress.Line(text)
    activity = client.progress if isinstance(client.progress, progress.Activity) else None
    quiet = activity.muted() if activity is not None else contextlib.nullcontext()
    try:
        with quiet:
            if live:
                line.start()
            try:
                return waiting.wait_until_ready(client, job, timeout=timeout, progress=seen.poll)
            finally:
                line.stop()  # erased before any other line: the result, an error, ^C's
    except (KeyboardInterrupt, Interrupted):
        typer.echo(f"{PROG}: interrupted: still waiting for {job} after "
                   f"{progress.duration(time.monotonic() - seen.started)} ({seen.status})",
                   err=True)
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None


def wait(ctx: typer.Context, job: JobArg, timeout: WaitTimeout = 1800) -> None:
    """Wait until the job's cluster accepts SSH, showing progress.

    Ready means: the platform names the head node and its SSH port accepts TCP. Polls every
    5 s, backing off to 30 s; on a terminal a live line shows the status, the time waited and
    the next check, otherwise one line per status change. Exits 0 when ready; after --timeout
    (default 30 minutes) exits 7, naming the last status seen; Ctrl-C exits 130.

    Example: rescale-ssh wait Fotxeb --timeout 900 && ssh rescale-Fotxeb
    """
    with open_client(settings_of(ctx), polling=True) as client:
        target = wait_for(client, job, timeout)
    typer.echo(f"job {job} is ready: ssh {target.alias}")


def _report_sync(result: SyncResult, verb: Callable[[str], str]) -> None:
    from rescale_ssh.cli import render

    if result.dry_run and result.change is not None:
        typer.echo(render.diff(result.change), nl=False)
    for job in result.added:
        typer.echo(f"{verb('added')} rescale-{job}")
    for job in result.updated:
        typer.echo(f"{verb('updated')} rescale-{job}")
    for job, why in result.dropped.items():
        typer.echo(f"{verb('dropped')} rescale-{job}{_because(why)}")
    for job, why in result.skipped.items():
        warn(f"job {job} is running but has no usable head node: {why}")
    if result.masters_ended:
        typer.echo("Closed the shared connection to "
                   + ", ".join(result.masters_ended) + " (its cluster stopped or moved)")
    for note in result.notes:
        typer.echo(f"note: {note}", err=True)
    _warn_keys(result.launch_keys)
    if result.keys_unchecked:
        typer.echo(f"note: the launch keys of {len(result.keys_unchecked)} more added jobs were "
                   "not checked: `rescale-ssh jobs --check-keys` checks them", err=True)
    if not (result.added or result.updated or result.dropped):
        typer.echo("Nothing to change.")


def _because(why: str) -> str:
    """`` (why)``; a reason that has brackets of its own (a status word the platform writes
    with them) follows a colon instead: never `(Stopped (Manual), cluster stopped)`."""
    return f": {why}" if any(c in why for c in "()[]") else f" ({why})"


def _verb(dry_run: bool) -> Callable[[str], str]:
    if dry_run:
        return lambda word: f"would be {word}:"
    return lambda word: word.capitalize()


def _approval(command: str, yes: bool) -> Callable[[SyncResult], bool]:
    """Asked by sync.sync before it drops anything: --yes, a person at a terminal, or a
    refusal without one (common.approve)."""
    from rescale_ssh.cli import render
    from rescale_ssh.sshconfig.sync import HOOKED

    def approve_drop(result: SyncResult) -> bool:
        from rescale_ssh.cli.common import approve

        hooked = [job for job, why in result.dropped.items() if why.endswith(HOOKED)]
        blocks = [job for job in result.dropped if job not in hooked]
        parts = [f"the {noun}{'s' if len(jobs) > 1 else ''} of "
                 + ", ".join(f"rescale-{job}" for job in jobs)
                 for noun, jobs in (("block", blocks), ("hook record", hooked)) if jobs]
        diff = render.diff(result.change) if result.change is not None else ""
        everyone = ", ".join(f"rescale-{job}" for job in result.dropped)
        return approve(command, " and ".join(parts), diff, f"Drop {everyone}?", yes=yes)

    return approve_drop


def _synced(ctx: typer.Context, command: str, *, add: bool, dry_run: bool, yes: bool,
            putty: bool = False, passphrase_file: str | None = None) -> None:
    from rescale_ssh.cli import putty as putty_cli
    from rescale_ssh.sshconfig import sync as syncing

    settings = settings_of(ctx)
    # --putty: the PuTTY key first (a passphrase asked, a missing key refused) before any write.
    key = putty_cli.key_for_sync(settings, passphrase_file, dry_run=dry_run) if putty else None
    with open_client(settings) as client:
        result = syncing.sync(settings, client, add=add, dry_run=dry_run,
                              approve=_approval(command, yes))
    if result.declined:
        raise typer.Exit(int(ExitCode.FAILURE))
    _report_sync(result, _verb(dry_run))
    putty_cli.drop_sessions(list(result.dropped), dry_run=dry_run)
    if key is not None:
        putty_cli.write_for_sync(settings, key, dry_run=dry_run)


def sync(
    ctx: typer.Context,
    dry_run: DryRun = False,
    yes: Yes = False,
    putty: Annotated[bool, typer.Option(
        "--putty", help="Also write a PuTTY saved session for every job kept or added (see "
        "`putty`).")] = False,
    passphrase_file: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--passphrase-file", metavar="FILE",
        help="With --putty, when the key has a passphrase and no .ppk yet: read the passphrase "
        "from the first line of FILE.", show_default=False)] = None,
) -> None:
    """Add a block for every running job with SSH; drop those of stopped jobs.

    One command keeps the config in step with the platform. Dropped jobs also lose their host
    keys, anything the hook cached for them, and the PuTTY sessions rescale-ssh wrote for
    them; with --putty every job with a block gets its PuTTY session. Before it drops
    anything it shows the change and asks; without a terminal it refuses unless --yes (adding
    alone never asks). Requests: the pages of the live jobs, one page of the newest completed
    ones, the instance pages of each running job (fetched 8 at a time), and one for each job
    with a block that neither list shows. For each job it adds (20 a run at most), the job
    detail, once: a warning names a cluster launched with a key other than yours.

    Example: rescale-ssh sync --dry-run
    """
    _synced(ctx, "sync", add=True, dry_run=dry_run, yes=yes, putty=putty,
            passphrase_file=passphrase_file)


def prune(ctx: typer.Context, dry_run: DryRun = False, yes: Yes = False) -> None:
    """Drop the blocks (and host keys, PuTTY sessions) of jobs whose cluster stopped.

    Like `sync`, but never adds: a job is dropped when its cluster is stopped or stopping, or
    when the platform no longer knows it. A job with a block that is not among the live jobs
    nor the newest completed ones is asked about directly. Shows the change and asks first;
    without a terminal it refuses unless --yes.

    Example: rescale-ssh prune --yes
    """
    _synced(ctx, "prune", add=False, dry_run=dry_run, yes=yes)


def shell(
    ctx: typer.Context,
    job: JobArg,
    wait_first: WaitFlag = False,
    timeout: WaitTimeout = 1800,
    ssh_program: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--ssh", metavar="PROGRAM", hidden=True, help="ssh to run (tests).")] = None,
    no_multiplex: Annotated[bool, typer.Option(
        "--no-multiplex", help="A connection of its own, not the job's shared one.")] = False,
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
    from rescale_ssh.cli import shell as shell_module

    settings = settings_of(ctx)
    own = list(shell_module.UNSHARED) if no_multiplex else []
    code = shell_module.run(settings, job, own + list(ctx.meta.get(SSH_OPTIONS, [])),
                            command=list(ctx.meta.get(REMOTE_COMMAND, [])), wait=wait_first,
                            timeout=timeout, ssh_program=ssh_program, waiter=wait_for,
                            notify=warn)
    raise typer.Exit(code)
