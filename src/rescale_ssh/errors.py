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
        super().__init__(f"invalid {field}{where}: {shown} ({rule})")
        self.field = field
        if source is not None and (
            source.endswith("command line") or source.startswith(("--", "RESCALE_"))
        ) and source != "--from-log":
            self.exit_code = ExitCode.USAGE  # the user's own input, not data we received


def shorten(value: object, limit: int = 60) -> str:
    """``repr`` of a value for a message: control characters escaped, at most ``limit``."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# What each exit code means: the man page is generated from this, and a test checks that the
# README's table says the same.
EXIT_CODE_MEANINGS = {
    ExitCode.OK: "success",
    ExitCode.FAILURE: "a check failed (doctor), or you declined a confirmation",
    ExitCode.USAGE: "usage error (bad arguments or options, invalid job ID), or a command "
    "that would remove something run without a terminal and without --yes",
    ExitCode.CONFIG: "local configuration problem (damaged section, unwritable or unreadable "
    "file)",
    ExitCode.AUTH: "no API key, or the platform rejected it (401/403)",
    ExitCode.NOT_FOUND: "job not found (on the platform, or no block for it)",
    ExitCode.UNAVAILABLE: "platform unreachable, timed out, or its answer was malformed",
    ExitCode.NOT_READY: "the job exists but its cluster does not accept SSH (queued, completed, "
    "stopped)",
    ExitCode.INVALID_DATA: "a value from the platform or a log line failed validation",
    ExitCode.INTERNAL: "internal error (a bug: run again with --debug and report it)",
    ExitCode.INTERRUPTED: "interrupted",
}
