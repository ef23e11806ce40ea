"""The one error boundary: expected errors → one line plus a hint and a documented exit code.

``rescale-ssh: error: <what happened>`` / ``hint: <what to do>`` on stderr. Tracebacks only with
``--debug`` (or RESCALE_SSH_DEBUG=1); an unexpected exception is a bug (exit 70). Standard
library only, so the hook can use it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from rescale_ssh.errors import ExitCode, RescaleSSHError

PROG = "rescale-ssh"


class Interrupted(BaseException):
    """^C in a command (cli.run's SIGINT handler). Not a KeyboardInterrupt: Typer turns those
    into a silent exit 130, and the user would see nothing at all."""


def on_interrupt(signum: int, frame: object) -> None:
    raise Interrupted


def wants_debug(argv: list[str]) -> bool:
    head = argv[: argv.index("--")] if "--" in argv else argv
    return "--debug" in head or os.environ.get("RESCALE_SSH_DEBUG") == "1"


def report(error: RescaleSSHError) -> None:
    if error.output:
        sys.stdout.write(error.output if error.output.endswith("\n") else error.output + "\n")
        sys.stdout.flush()
    print(f"{PROG}: error: {error.message}", file=sys.stderr)
    if error.hint:
        print(f"hint: {error.hint}", file=sys.stderr)


def _case_hint(error: RescaleSSHError) -> None:
    """A job the platform does not know, known here in another case: say so."""
    from rescale_ssh.errors import NotFoundError

    if isinstance(error, NotFoundError) and error.job:
        from rescale_ssh import paths
        from rescale_ssh.hook import caseless

        error.hint = caseless.hint(error.job, str(paths.state_dir()), error.hint)


def guarded(body: Callable[[], int], *, debug: bool) -> int:
    try:
        return body()
    except RescaleSSHError as error:
        if debug:
            import traceback  # only here: it costs every command ~5 ms

            traceback.print_exc()
        _case_hint(error)
        report(error)
        return int(error.exit_code)
    except (KeyboardInterrupt, Interrupted):
        print(f"{PROG}: interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        # The reader went away (`rescale-ssh list | head`): not an error worth a message.
        _silence_stdout()
        return int(ExitCode.OK)
    except Exception as exc:
        if debug:
            import traceback  # only here: it costs every command ~5 ms

            traceback.print_exc()
        print(f"{PROG}: error: internal error ({type(exc).__name__})", file=sys.stderr)
        print(
            "hint: this is a bug in rescale-ssh; run again with --debug and report the "
            "traceback (it never contains your API key)",
            file=sys.stderr,
        )
        return int(ExitCode.INTERNAL)


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass
