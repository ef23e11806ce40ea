"""The project's own errors and the exit codes they map to.

Standard library only: the ssh hook raises these too. One handler (``boundary.py``) turns them
into ``rescale-ssh: error: <message>`` plus ``hint: <next step>`` and the exit code below.
"""

from __future__ import annotations


class ExitCode:
    """Documented exit codes (README, man page).

    Plain ints, not an IntEnum: importing enum (and functools, collections behind it) costs the
    ssh hook about 5 ms on every run.
    """

    OK = 0
    FAILURE = 1  # a check failed (doctor) or the user declined a confirmation
    USAGE = 2  # bad command line (also what Click uses)
    CONFIG = 3  # local problem: ssh config damaged, unwritable, insecure; missing key file
    AUTH = 4  # no API key, or the platform rejected it (401/403)
    NOT_FOUND = 5  # job (or block) not found
    UNAVAILABLE = 6  # platform unreachable, timed out, 5xx, or answered nonsense
    NOT_READY = 7  # the job exists but its cluster does not accept SSH (queued, stopped, ...)
    INVALID_DATA = 8  # a value from the platform or a log line failed validation
    INTERNAL = 70  # a bug in rescale-ssh (EX_SOFTWARE)
    INTERRUPTED = 130  # ^C


class RescaleSSHError(Exception):
    """An expected failure: one line for the user, an optional hint, an exit code."""

    exit_code: int = ExitCode.FAILURE
    output: str | None = None  # text for stdout (e.g. lines to add by hand), before the message

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(RescaleSSHError):
    exit_code = ExitCode.USAGE


class PassphraseRequired(UsageError):
    """A key is protected and no passphrase was given: the command line may ask for it."""


class ConfigError(RescaleSSHError):
    exit_code = ExitCode.CONFIG


class ReadOnlyConfigError(ConfigError):
    """The ssh config may not be written (a dotfile manager's, e.g. home-manager's): ``output``
    holds the lines the user can add by hand."""

    def __init__(self, message: str, hint: str | None = None, *, output: str | None) -> None:
        super().__init__(message, hint)
        self.output = output


class ProgramError(ConfigError):
    """A local program (ssh, ssh-add, a clipboard tool) could not be run or did not finish."""


class AuthError(RescaleSSHError):
    exit_code = ExitCode.AUTH


class NotFoundError(RescaleSSHError):
    exit_code = ExitCode.NOT_FOUND

    def __init__(self, message: str, hint: str | None = None, *, job: str | None = None
                 ) -> None:
        super().__init__(message, hint)
        self.job = job  # the job not found (caseless.py: one known in another case is named)


class PlatformError(RescaleSSHError):
    exit_code = ExitCode.UNAVAILABLE


class NotReadyError(RescaleSSHError):
    exit_code = ExitCode.NOT_READY


class JobEndedError(NotReadyError):
    """The job has ended and its cluster is not up: no wait will change that."""


class InvalidValueError(RescaleSSHError):
    """A value failed validation. ``field`` names it; the user's own input is a usage error."""

    exit_code = ExitCode.INVALID_DATA

    def __init__(self, field: str, value: object, rule: str, *, source: str | None = None) -> None:
        shown = shorten(value)
        where = f" from {source}" if source else ""
        super().__init__(f"invalid {field}{where}: {shown} ({rule})", _hint_for(field, source))
        self.field = field
        if source is not None and (
            source.endswith("command line") or source.startswith(("--", "RESCALE_"))
        ) and source != "--from-log":
            self.exit_code = ExitCode.USAGE  # the user's own input, not data we received


def _hint_for(field: str, source: str | None) -> str | None:
    """Every error has a next step (README): what to do about a value that was refused."""
    if field == "job ID" and source is not None and (
            source.endswith("command line") or source.startswith("RESCALE_")):
        return ("a job ID is the letters and digits after /jobs/ in the job's web address, "
                "e.g. Fotxeb")
    if source == "--from-log":
        return ("paste the whole 'Instance ready for ssh access' line from the job's Logs "
                "(or `--from-log -` and the log on stdin)")
    if source is not None and source.startswith(("--", "RESCALE_")):
        return f"give {source} a valid value (see `rescale-ssh --help`)"
    if source is not None and ("platform" in source or "job" in source):
        return ("rescale-ssh writes nothing from it into your ssh config; try again later, "
                "and report it if it persists")
    return None


def from_code(code: int, message: str, hint: str | None = None, *, job: str | None = None
              ) -> RescaleSSHError:
    """An error again from its exit code (all the hook's records keep of it): ``path`` and
    ``code`` on a job the hook could not resolve exit as ``shell`` and ``add`` would."""
    if code == ExitCode.NOT_FOUND:
        return NotFoundError(message, hint, job=job)
    kinds: dict[int, type[RescaleSSHError]] = {
        ExitCode.USAGE: UsageError, ExitCode.CONFIG: ConfigError, ExitCode.AUTH: AuthError,
        ExitCode.UNAVAILABLE: PlatformError, ExitCode.NOT_READY: NotReadyError,
    }
    error = kinds.get(code, RescaleSSHError)(message, hint)
    if code not in kinds:
        error.exit_code = code if 0 < code < 256 else ExitCode.FAILURE
    return error


def shorten(value: object, limit: int = 60) -> str:
    """``repr`` of a value for a message: control characters escaped, at most ``limit``."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# The exit-code table, the one source: README's "## Exit codes" (scripts/gen_readme.py) and the
# man page's EXIT STATUS (scripts/gen_man.py) are generated from it, and
# tests/cli/test_exit_codes.py drives each example through the real command line.
EXIT_CODES: tuple[tuple[int, str, str], ...] = (
    (ExitCode.OK, "success",
     "the block was written; `wait`: the cluster accepts SSH"),
    (ExitCode.FAILURE, "a check failed (doctor), or you declined a confirmation",
     "`doctor` found a problem; you answered no to `install`, `remove`, `prune`, `sync` or "
     "`uninstall`"),
    (ExitCode.USAGE, "usage error (bad arguments or options, invalid job ID), or a command "
     "that would remove something run without a terminal and without --yes",
     "an unknown command or option, a missing JOB, `--timeout abc`, a job ID with a dash, "
     "`shell JOB ls` (a command goes after `--`), `prune` from cron without --yes"),
    (ExitCode.CONFIG, "local problem (damaged section, unwritable, unreadable or insecure file, "
     "a program that is missing)",
     "a damaged rescale-ssh section, an ssh config that is a folder, `code` without VS Code's "
     "`code` on PATH, `shell` without ssh"),
    (ExitCode.AUTH, "no API key, or the platform rejected it (401/403)",
     "`add JOB` with no key set or stored, a revoked key, a job not shared with you"),
    (ExitCode.NOT_FOUND, "job not found (on the platform, or no block for it)",
     "`add`, `status`, `wait` or `shell` of a job the platform does not know; `path` or `code` "
     "of a job with no block and no hook"),
    (ExitCode.UNAVAILABLE, "platform unreachable, timed out, or its answer was malformed",
     "5xx or 429 beyond the retries, no answer in time, HTML or broken JSON"),
    (ExitCode.NOT_READY, "the job exists but its cluster does not accept SSH (queued, completed, "
     "stopped)",
     "`add`, `path`, `code` or `shell` of a queued or stopped job; `wait` past its --timeout "
     "(also while the platform fails)"),
    (ExitCode.INVALID_DATA, "a value from the platform or a pasted log line failed validation",
     "an address or user name that is not one; `add --from-log` with no SSH line, or with "
     "another job's line (unless --force)"),
    (ExitCode.INTERNAL, "internal error (a bug: run again with --debug and report it)", ""),
    (ExitCode.INTERRUPTED, "interrupted", "Ctrl-C"),
)
EXIT_CODES_NOTE = ("Once ssh runs, `shell` exits with ssh's status instead: the remote shell's "
                   "or command's, or 255 when ssh itself fails.")
EXIT_CODE_MEANINGS = {code: meaning for code, meaning, _ in EXIT_CODES}
EXIT_CODE_EXAMPLES = {code: example for code, _, example in EXIT_CODES if example}
