"""How the command line explains itself: usage errors in the boundary's format, and every
command's help showing the global options and plain placeholders.

Typer (0.26 to 0.28, pinned in pyproject) vendors Click as ``typer._click``: its exceptions are
reached there. Loaded only by the Typer CLI, never by the hook.
"""

from __future__ import annotations

from typing import Any

import typer
from typer import _click as click  # Typer's vendored Click (no public name for its errors)
from typer.core import TyperCommand

from rescale_ssh.errors import ExitCode, RescaleSSHError, UsageError

PROG = "rescale-ssh"
GLOBAL_HELP_TITLE = "Global options (before or after the command)"
# The root options every command accepts (hoist_globals below moves them in front).
GLOBAL_NAMES = ("ssh_config", "platform", "profile", "identity", "debug")

ClickException = click.exceptions.ClickException
ClickUsageError = click.exceptions.UsageError
NoArgsIsHelpError = click.exceptions.NoArgsIsHelpError
Abort = typer.Abort

_DID_YOU_MEAN = ". Did you mean "


def usage_error(exc: Any) -> RescaleSSHError:
    """Click's complaint as one of ours: its message's first line, and a hint naming the
    command's --help (with Click's or Typer's "did you mean" when it offers one)."""
    ctx = getattr(exc, "ctx", None)
    where = ctx.command_path if ctx is not None else PROG
    message = str(exc.message if hasattr(exc, "possibilities") else exc.format_message())
    message = (message.strip().splitlines() or ["bad command line"])[0]
    suggestion = ""
    if _DID_YOU_MEAN in message:  # Typer's, for commands: "No such command 'ad'. Did you..."
        message, _, rest = message.partition(_DID_YOU_MEAN)
        suggestion = f"did you mean {rest.rstrip('?')}? "
    possibilities = sorted(getattr(exc, "possibilities", None) or [])
    if possibilities:  # Click's, for options
        suggestion = f"did you mean {' or '.join(possibilities)}? "
    message = message.rstrip(".")
    message = message[:1].lower() + message[1:]
    error: RescaleSSHError = UsageError(message, f"{suggestion}run '{where} --help'")
    if not isinstance(exc, ClickUsageError):
        error.exit_code = int(getattr(exc, "exit_code", ExitCode.USAGE))
    return error


def _seconds_text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def within(low: float | None = None, high: float | None = None) -> Any:
    """A callback that keeps a number in range, instead of Click's FloatRange (whose help
    reads ``x>=0``); out of range is a usage error in our format."""

    def check(value: float) -> float:
        if value is None:
            return value
        if (low is not None and value < low) or (high is not None and value > high):
            if high is None:
                rule = f"at least {_seconds_text(low)}"
            elif low is None:
                rule = f"at most {_seconds_text(high)}"
            else:
                rule = f"from {_seconds_text(low)} to {_seconds_text(high)}"
            raise typer.BadParameter(f"{_seconds_text(value)} is not {rule}")
        return value

    return check


class GlobalHelpCommand(TyperCommand):
    """A command whose help ends with the global options, and whose usage line reads
    ``JOB [SUBPATH]``, not Typer's ``{job}``."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name != "argument":
                pieces.extend(param.get_usage_pieces(ctx))
                continue
            name = (param.metavar or (param.name or "").upper()).strip("[]")
            if param.nargs != 1:
                name += "..."
            pieces.append(name if param.required else f"[{name}]")
        return pieces

    def format_options(self, ctx: Any, formatter: Any) -> None:
        super().format_options(ctx, formatter)
        root = ctx.find_root()
        if root is ctx:
            return
        rows = [param.get_help_record(root) for param in root.command.get_params(root)
                if param.name in GLOBAL_NAMES]
        rows = [row for row in rows if row is not None]
        if rows:
            with formatter.section(GLOBAL_HELP_TITLE):
                formatter.write_dl(rows)


def use_global_help(app: typer.Typer) -> None:
    """Every visible command of ``app`` (and of its sub-apps) gets :class:`GlobalHelpCommand`,
    without each module's decorators having to say so."""
    for info in app.registered_commands:
        if info.cls in (None, TyperCommand) and not info.hidden:
            info.cls = GlobalHelpCommand
    for group in app.registered_groups:
        if group.typer_instance is not None:
            use_global_help(group.typer_instance)


REMOTE_COMMAND = "rescale_ssh.remote_command"  # ctx.meta keys set by ShellCommand
SSH_OPTIONS = "rescale_ssh.ssh_options"


class ShellCommand(GlobalHelpCommand):
    """``shell JOB [SSH-OPTIONS...] [-- COMMAND [ARGS...]]``: Click parses only the command's
    own options and JOB; ssh's options (``-oBatchMode=yes`` would otherwise be read as Click's
    ``-h`` among others) and the words after ``--`` are kept aside in ``ctx.meta``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        from rescale_ssh.cli import shell

        remote: list[str] = []
        if "--" in args:
            cut = args.index("--")
            remote = args[cut + 1 :]
            args = args[:cut]
        with_value: set[str] = set()
        flags: set[str] = set(ctx.help_option_names)
        for param in self.get_params(ctx):
            if param.param_type_name == "option":
                names = [*param.opts, *param.secondary_opts]
                (flags if getattr(param, "is_flag", False) else with_value).update(names)
        ours, ssh_words, job = shell.split_words(args, flags=flags, with_value=with_value)
        if job is None and remote:  # `shell -- JOB [COMMAND...]`: JOB as after any `--`
            ours += ["--", remote.pop(0)]
        ctx.meta[SSH_OPTIONS] = ssh_words
        ctx.meta[REMOTE_COMMAND] = remote
        return super().parse_args(ctx, ours)

    usage_tail = ("[SSH-OPTIONS]...", "[-- COMMAND [ARGS]...]")  # also in the man page

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return [*super().collect_usage_pieces(ctx), *self.usage_tail]


# Global options may be given after the command too (`rescale-ssh add JOB --ssh-config F`):
# hoist_globals moves them in front, where Click expects them.
GLOBAL_VALUE_OPTIONS = ("--ssh-config", "--platform", "--profile", "--identity")
GLOBAL_FLAGS = ("--debug",)


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
