"""Pieces every command module shares: argument types, settings, the platform client."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from rescale_ssh.cli import progress
from rescale_ssh.settings import Settings

if TYPE_CHECKING:
    from rescale_ssh.platform.client import Client

PROG = "rescale-ssh"

COMPLETE_DEADLINE = 2.0  # seconds a TAB may wait for the platform, retries included


def command_group(name: str, help: str) -> typer.Typer:
    """A group of subcommands (`key`, `config`) set up as the main app is: no completion
    installer of its own, no pretty tracebacks (they would show locals: keys, passphrases),
    -h as --help, plain help text."""
    return typer.Typer(name=name, help=help, no_args_is_help=True, add_completion=False,
                       pretty_exceptions_enable=False, pretty_exceptions_show_locals=False,
                       context_settings={"help_option_names": ["-h", "--help"]},
                       rich_markup_mode=None)


def complete_jobs(ctx: typer.Context, incomplete: str) -> list[str]:
    """Job IDs for TAB: the jobs with a block, those the hook has records of, and, when an API
    key is at hand, the live jobs (one page of the not-completed list, no instances; at most
    COMPLETE_DEADLINE seconds, no retry). Without a key nothing but local files is read (nor
    is requests imported); a platform that fails or is slow leaves the local IDs."""
    from rescale_ssh import configfile
    from rescale_ssh.hook import jobcache
    from rescale_ssh.sshconfig import section

    try:
        params = ctx.find_root().params

        def flag(name: str) -> str | None:
            value = params.get(name)
            return value if isinstance(value, str) else None

        settings = Settings(ssh_config_flag=flag("ssh_config"), platform_flag=flag("platform"),
                            profile_flag=flag("profile"), use_file=True)
        path = settings.ssh_config
        current = section.read(configfile.read_bytes(path) or b"", path=str(path))
        jobs = set(current.entries)
        if current.hook is not None:
            jobs.update(jobcache.cached_jobs(current.hook.state_dir))
    except (Exception, SystemExit):  # TAB must never show a traceback
        return []
    jobs.update(_live_jobs(settings))
    return sorted(job for job in jobs if job.startswith(incomplete))


def _live_jobs(settings: Settings) -> list[str]:
    try:
        key = settings.api_key()
        platform = settings.platform()
    except (Exception, SystemExit):
        return []  # no key (or no usable setting): local files only
    try:
        from rescale_ssh.platform import joblist
        from rescale_ssh.platform.client import Client

        with Client(platform, key, retries=0, deadline=COMPLETE_DEADLINE,
                    connect_timeout=COMPLETE_DEADLINE / 2,
                    read_timeout=COMPLETE_DEADLINE) as client:
            return joblist.live_ids(client)
    except (Exception, SystemExit):
        return []


def checked_job(value: str) -> str:
    """Every command's JOB is checked where it is parsed: one rule, one message, exit 2."""
    from rescale_ssh import validate

    return validate.job_id(value, source="the command line")


JobArg = Annotated[str, typer.Argument(metavar="JOB",
                                       help="Rescale job ID, e.g. Fotxeb (case-sensitive).",
                                       show_default=False, autocompletion=complete_jobs,
                                       callback=checked_job)]
DryRun = Annotated[
    bool, typer.Option("--dry-run", help="Show the change as a diff; write nothing.")
]
JsonOut = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
FromLog = Annotated[Optional[str], typer.Option(  # noqa: UP045 - Typer needs Optional
    "--from-log", metavar="TEXT",
    help="The job's 'Instance ready for ssh access' log line, or '-' to read a pasted log "
    "from stdin. Needs no API key.", show_default=False)]
ForceLine = Annotated[bool, typer.Option(
    "--force", help="With --from-log: take a line whose user or working directory names "
    "another job.")]


def settings_of(ctx: typer.Context) -> Settings:
    """The Settings chosen by the global options."""
    obj = ctx.find_root().obj
    assert isinstance(obj, Settings)
    return obj


# Commands that write nothing anywhere: they may run as root on another user's files.
READ_ONLY = frozenset(("list", "doctor"))


def guard(settings: Settings, command: str | None) -> None:
    """Before any command: as root on another user's files (``sudo`` keeping their HOME),
    refuse to write there; and refuse a state folder ssh would refuse, or that others could
    use to run their code as you (ownership.py). ``doctor`` reports it instead, and
    ``uninstall`` goes on: taking our Include out of the config is the way out."""
    from rescale_ssh import ownership, paths
    from rescale_ssh.errors import ConfigError

    state = str(paths.state_dir())
    if command in READ_ONLY:
        return
    owner = ownership.foreign_owner(str(settings.ssh_config), state)
    if owner is not None:
        raise ConfigError(
            f"running as root on the files of {ownership.describe(owner)} "
            f"({settings.ssh_config}): what root writes there would be root's, and that "
            "user's ssh would stop at it",
            "run rescale-ssh as that user, without sudo (or `sudo -u USER -H rescale-ssh ...`)")
    if command in ("uninstall", "login", "logout"):  # these do not use the state folder
        return
    found = ownership.problems(state)
    if found:
        raise ConfigError(f"{found[0].message}: ssh refuses such files, or runs what another "
                          "user put there", found[0].fix)


# A command's whole time with the platform, in calls' deadlines (each 60 s, or
# RESCALE_SSH_TIMEOUT): every page, retry and back-off of every call it makes.
WHOLE_COMMAND = 5


def open_client(settings: Settings, *, polling: bool = False) -> Client:
    """A platform client for the chosen platform and key (imports requests only now). Its
    calls all end within :data:`WHOLE_COMMAND` deadlines, however the platform behaves;
    ``polling`` (``wait``, ``--wait``: bounded by their own --timeout) has no such limit."""
    from rescale_ssh.platform.account import key_source
    from rescale_ssh.platform.client import Client
    from rescale_ssh.settings import client_limits, request_deadline

    total = None if polling else WHOLE_COMMAND * request_deadline(60.0)
    platform = settings.platform()
    return Client(platform, settings.api_key(), total=total,
                  key_source=key_source(settings)[0], progress=slow_calls(platform),
                  **client_limits(60.0))


def slow_calls(platform: str) -> progress.Activity | None:
    """On a terminal, a spinner for any platform call slower than progress.SLOW (finding
    12: `jobs` was silent for a minute, then failed); nothing at all when stderr is not one."""
    from urllib.parse import urlsplit

    if not progress.is_terminal(sys.stderr):
        return None
    return progress.Activity(urlsplit(platform).hostname or platform)


def confirm(diff: str, question: str, *, yes: bool) -> bool:
    """Show the planned change; ask only on a terminal (never when stdin is not one)."""
    if not diff:
        return True
    typer.echo(diff, nl=False)
    if yes or not sys.stdin.isatty():
        return True
    return typer.confirm(question, default=True)


def approve(command: str, change: str, diff: str, question: str, *, yes: bool) -> bool:
    """Before a command removes something (uninstall, remove, prune, sync dropping jobs):
    with --yes, go on; on a terminal, show the diff and what goes, and ask (Enter alone: no);
    without a terminal, refuse (UsageError, exit 2): nothing ever prompts then, and a script
    that did not say --yes must not lose blocks, host keys or the hook because nobody could answer
    (`echo n | rescale-ssh uninstall` once removed everything). ``change`` says what would go;
    ``diff`` (maybe empty) is shown before the question."""
    from rescale_ssh.errors import UsageError

    if yes:
        return True
    if not sys.stdin.isatty():
        raise UsageError(f"{command} would remove {change}; refusing without a terminal",
                         "run it again with --yes (or --dry-run to see the change)")
    if diff:
        typer.echo(diff, nl=False)
    typer.echo(f"{command} removes {change}.")
    if typer.confirm(question, default=False):  # Enter alone keeps everything
        return True
    typer.echo("Nothing changed.", err=True)
    return False


def warn(message: str, hint: str | None = None) -> None:
    typer.echo(f"{PROG}: warning: {message}", err=True)
    if hint:
        typer.echo(f"hint: {hint}", err=True)
