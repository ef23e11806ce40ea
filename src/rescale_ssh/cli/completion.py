"""TAB completion: Typer's shell classes, taught two things Typer does not do.

- Global options after the command (`rescale-ssh add Fotxeb --ssh<TAB>`): the command line
  accepts them there (usage.hoist_globals), so completion offers them there too, and completes
  their values, without making them options of every command (``--help`` stays as it is).
- zsh from fpath: Typer's zsh script only registers its function when loaded, so the first TAB
  after compinit autoloads it and completes nothing (the file names of the folder instead, on
  the next try). This script, like Click's own, completes when autoloaded and registers when
  sourced.

:func:`register` runs after Typer registered its classes (they are registered again each time
the app is turned into a Click command) and before the command line is parsed.
"""

from __future__ import annotations

from typing import Any

from typer._click import Command, Context
from typer._click.shell_completion import (
    CompletionItem,
    ShellComplete,
    _resolve_context,
    add_completion_class,
)
from typer._completion_classes import (
    BashComplete,
    FishComplete,
    PowerShellComplete,
    ZshComplete,
)

ZSH_SOURCE = """\
#compdef %(prog_name)s

%(complete_func)s() {
  eval $(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" %(autocomplete_var)s=complete_zsh \
%(prog_name)s)
}

if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
  # autoloaded from fpath by compinit: complete now (this is the first TAB)
  %(complete_func)s "$@"
else
  # sourced or eval'd: register for later
  compdef %(complete_func)s %(prog_name)s
fi
"""

# Typer's script also rebinds Tab for the whole PowerShell session (MenuComplete); a
# completion script should only complete its own command.
POWERSHELL_SOURCE = """\
$scriptblock = {
    param($wordToComplete, $commandAst, $cursorPosition)
    $Env:%(autocomplete_var)s = "complete_powershell"
    $Env:_TYPER_COMPLETE_ARGS = $commandAst.ToString()
    $Env:_TYPER_COMPLETE_WORD_TO_COMPLETE = $wordToComplete
    %(prog_name)s | ForEach-Object {
        $commandArray = $_ -Split ":::"
        $command = $commandArray[0]
        $helpString = $commandArray[1]
        [System.Management.Automation.CompletionResult]::new(
            $command, $command, 'ParameterValue', $helpString)
    }
    $Env:%(autocomplete_var)s = ""
    $Env:_TYPER_COMPLETE_ARGS = ""
    $Env:_TYPER_COMPLETE_WORD_TO_COMPLETE = ""
}
Register-ArgumentCompleter -Native -CommandName %(prog_name)s -ScriptBlock $scriptblock
"""


def global_names() -> tuple[tuple[str, ...], tuple[str, ...]]:
    from rescale_ssh.cli.usage import GLOBAL_FLAGS, GLOBAL_VALUE_OPTIONS

    return GLOBAL_VALUE_OPTIONS, GLOBAL_FLAGS


def completion_args(args: list[str]) -> list[str]:
    """The words before the one being completed, as the CLI parses them: global options
    moved in front of the command. A global option waiting for its value (`add JOB
    --ssh-config <TAB>`) is completed where it belongs, on the program itself."""
    from rescale_ssh.cli.usage import hoist_globals

    values, _ = global_names()
    if "--" not in args and args and args[-1] in values:
        return [*_leading_globals(hoist_globals(args[:-1])), args[-1]]
    return hoist_globals(args)


def _leading_globals(hoisted: list[str]) -> list[str]:
    """The global options hoist_globals put in front, with their values."""
    values, flags = global_names()
    i = 0
    while i < len(hoisted):
        name = hoisted[i].split("=", 1)[0]
        if name in values and "=" not in hoisted[i]:
            i += 2
        elif name in values or hoisted[i] in flags:
            i += 1
        else:
            break
    return hoisted[:i]


def global_options(cli: Command, ctx: Context, args: list[str],
                   incomplete: str) -> list[CompletionItem]:
    """The global options a command's option-name completion should offer too."""
    if ctx.parent is None or ctx.command.hidden or "--" in args or not incomplete.startswith("-"):
        return []  # the program itself lists them already; hook/proxy take ssh's words
    values, flags = global_names()
    given = {arg.split("=", 1)[0] for arg in args}
    items = []
    for param in cli.params:
        for name in param.opts:
            if name in (*values, *flags) and name not in given and name.startswith(incomplete):
                items.append(CompletionItem(name, help=getattr(param, "help", None)))
    return items


class _GlobalsAfterCommand(ShellComplete):
    def get_completions(self, args: list[str], incomplete: str) -> list[CompletionItem]:
        args = completion_args(args)
        found = super().get_completions(args, incomplete)
        ctx = _resolve_context(self.cli, dict(self.ctx_args), self.prog_name, list(args))
        known = {item.value for item in found}
        extra = [item for item in global_options(self.cli, ctx, args, incomplete)
                 if item.value not in known]
        return found + extra


class Bash(_GlobalsAfterCommand, BashComplete):
    pass


class Zsh(_GlobalsAfterCommand, ZshComplete):
    source_template = ZSH_SOURCE


class Fish(_GlobalsAfterCommand, FishComplete):
    pass


class PowerShell(_GlobalsAfterCommand, PowerShellComplete):
    source_template = POWERSHELL_SOURCE


def register() -> None:
    shells: dict[str, Any] = {"bash": Bash, "zsh": Zsh, "fish": Fish, "powershell": PowerShell,
                              "pwsh": PowerShell}
    for name, cls in shells.items():
        add_completion_class(cls, name)
