#!/usr/bin/env python3
"""Generate man/rescale-ssh.1 from the program's own command tree.

    python scripts/gen_man.py          # write man/rescale-ssh.1
    python scripts/gen_man.py --check  # exit 1 when the page is out of date

Typer (>= 0.26) vendors Click, so click-man cannot read it: this walks the Click command that
Typer builds, the same one that answers --help, and writes roff that `groff -man -ww -z`
accepts without a warning.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from rescale_ssh import __version__  # noqa: E402
from rescale_ssh.errors import EXIT_CODES, EXIT_CODES_NOTE  # noqa: E402

PAGE = ROOT / "man" / "rescale-ssh.1"

ENVIRONMENT = [
    ("RESCALE_SSH_CONFIG", "The ssh config file to manage (as --ssh-config); default "
     "~/.ssh/config."),
    ("RESCALE_API_URL", "The platform: a base URL or a region us, eu, jp, kr, itar, itar-gov (as "
     "--platform). A full .../api/v3/ URL, or a host name without https://, is accepted too."),
    ("RESCALE_API_BASE_URL", "The same as RESCALE_API_URL, which wins when both are set."),
    ("RESCALE_PROFILE", "The section of the Rescale CLI's apiconfig to use (as --profile); "
     "default [default]."),
    ("RESCALE_CONFIG_FILE", "The Rescale CLI's apiconfig, instead of "
     "~/.config/rescale/apiconfig."),
    ("RESCALE_API_KEY", "The Rescale API key. Never a command-line option: it would show in "
     "ps(1). Default: the profile's apikey."),
    ("RESCALE_SSH_IDENTITY", "The private key written as IdentityFile (as --identity); default "
     "~/.ssh/rescale_ed25519."),
    ("RESCALE_SSH_DEBUG", "Set to 1 for tracebacks and a request log, like --debug."),
    ("RESCALE_SSH_TIMEOUT", "The longest one request to the platform may take, retries "
     "included, in seconds (default 60; 30 for login, whoami and doctor); one attempt gets at "
     "most a third of it. The hook has its own limit: install --timeout."),
    ("RESCALE_SSH_POLL_INTERVAL", "First polling interval of wait, in seconds (default 5; "
     "it backs off to 30)."),
    ("XDG_STATE_HOME", "Where the tool's own files live (default ~/.local/state)."),
]

FILES = [
    ("~/.ssh/config", "The ssh config. rescale-ssh owns one marked section at the top (the "
     "jobs' Host blocks, then Host * and an Include of its own ssh.conf); every other byte is "
     "left as it is."),
    ("~/.ssh/rescale_ed25519, ~/.ssh/rescale_ed25519.pub", "The default key pair (key generate)."),
    ("$XDG_STATE_HOME/rescale-ssh/known_hosts", "Host keys of the jobs' clusters, under "
     "per-job aliases."),
    ("$XDG_STATE_HOME/rescale-ssh/hook.conf", "What install fixed for the hook: program, "
     "identity, time limits."),
    ("$XDG_STATE_HOME/rescale-ssh/jobs/", "The hook's records of jobs."),
    ("$XDG_STATE_HOME/rescale-ssh/me", "Who the API key belongs to (username, email; never "
     "the key), asked by jobs at most once a day to tell shared jobs."),
    ("$XDG_STATE_HOME/rescale-ssh/ssh.conf", "What the section includes: the added jobs' "
     "host-key policy and, after install, the hook's Match line."),
    ("$XDG_STATE_HOME/rescale-ssh/hook", "The sh script the hook's Match line runs."),
    ("$XDG_STATE_HOME/rescale-ssh/fresh.conf", "Host blocks the hook wrote for ssh to include, "
     "kept a minute after each hook run."),
    ("~/.config/rescale/apiconfig", "The Rescale CLI's profiles (apikey or api_key, apibaseurl "
     "or platform_url), shared with it; profile [default] unless one is chosen; written by "
     "login, mode 0600."),
    ("~/.local/share/.../rescale-ssh*", "Links install makes to the shipped completion "
     "scripts and man page in bash-completion/completions, zsh/site-functions, "
     "fish/vendor_completions.d, powershell and man/man1 there, where bash-completion, fish "
     "and man look per user (zsh: add "
     "fpath=(~/.local/share/zsh/site-functions $fpath) to ~/.zshrc before compinit; "
     "PowerShell: add . ~/.local/share/powershell/rescale-ssh.ps1 to $PROFILE). Recorded in "
     "$XDG_STATE_HOME/rescale-ssh/shell-files; uninstall removes exactly these links."),
]

EXAMPLES = [
    ("Write a block for a running job, then use it:",
     "rescale-ssh add Fotxeb\nssh rescale-Fotxeb"),
    ("Without an API key, from the line in the job's logs:",
     "rescale-ssh add Fotxeb --from-log \"Instance ready for ssh access. Command: ssh -i "
     "</path/to/key> uprod_Fotxeb@203.0.113.7; working directory: /enc/uprod_Fotxeb/work\""),
    ("Copy files into the job's working directory:",
     "scp results.tar.gz \"$(rescale-ssh path Fotxeb)/\"\n"
     "rsync -a inputs/ \"$(rescale-ssh path Fotxeb inputs)/\""),
    ("Every job without add, and VS Code on its working directory:",
     "rescale-ssh install\nrescale-ssh code Fotxeb"),
    ("Wait for a queued job, then open a shell in its working directory:",
     "rescale-ssh wait Fotxeb && rescale-ssh shell Fotxeb"),
]


def esc(text: str) -> str:
    """Roff-escape running text: backslashes, and dashes that are not hyphens."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    # groff reads Latin-1 by default: other characters as named Unicode glyphs (→ is \[u2192]).
    return "".join(c if ord(c) < 128 else f"\\[u{ord(c):04X}]" for c in text)


def line(text: str) -> str:
    """One input line of running text (a leading . or ' would be a request)."""
    text = esc(text)
    return "\\&" + text if text.startswith((".", "'")) else text


def paragraphs(doc: str) -> list[str]:
    out: list[str] = []
    for block in inspect.cleandoc(doc).split("\n\n"):
        text = " ".join(block.split())
        if not text:
            continue
        if text.startswith("Example:"):
            out += [".PP", "Example:", ".PP", ".RS", ".nf", line(text[len("Example:"):].strip()),
                    ".fi", ".RE"]
        else:
            out += [".PP", line(text)]
    return out


def option_lines(params: list[Any]) -> list[str]:
    out: list[str] = []
    for param in params:
        if getattr(param, "hidden", False) or param.param_type_name != "option":
            continue
        names = ", ".join(f"\\fB{esc(o)}\\fR" for o in [*param.opts, *param.secondary_opts])
        metavar = "" if param.is_flag else f" \\fI{esc(param.metavar or param.name.upper())}\\fR"
        out += [".TP", names + metavar]
        if param.help:
            out.append(line(" ".join(param.help.split())))
    return out


def usage(path: list[str], command: Any) -> str:
    words = [f"\\fB{esc(w)}\\fR" for w in path]
    for param in command.params:
        if param.param_type_name == "argument":
            name = esc((param.metavar or param.name).upper().strip("[]"))
            words.append(f"\\fI{name}\\fR" if param.required else f"[\\fI{name}\\fR]")
    if any(p.param_type_name == "option" and not getattr(p, "hidden", False)
           for p in command.params):
        words.append("[\\fIOPTIONS\\fR]")
    words += [esc(piece) for piece in getattr(command, "usage_tail", ())]  # shell's
    return " ".join(words)


def commands(group: Any, path: list[str]) -> list[str]:
    out: list[str] = []
    for name, command in group.commands.items():
        if getattr(command, "hidden", False):
            continue
        here = [*path, name]
        if hasattr(command, "commands"):
            out += commands(command, here)
            continue
        out += [".SS", usage(here, command)]
        out += paragraphs(command.help or "")
        out += option_lines(command.params)
    return out


def render() -> str:

    from rescale_ssh.cli.app import click_command

    root = click_command()
    out = [
        '.\\" auto-generated by scripts/gen_man.py from rescale-ssh\'s command line; do not edit',
        f'.TH RESCALE\\-SSH 1 "" "rescale\\-ssh {esc(__version__)}" "User Commands"',
        ".SH NAME",
        "rescale\\-ssh \\- every Rescale job a real OpenSSH host",
        ".SH SYNOPSIS",
        "\\fBrescale\\-ssh\\fR [\\fIGLOBAL OPTIONS\\fR] \\fICOMMAND\\fR [\\fIARGUMENTS\\fR]",
        ".SH DESCRIPTION",
        *paragraphs(root.help or ""),
        ".SH GLOBAL OPTIONS",
        ".PP",
        "These may also follow the command name.",
        *option_lines(root.params),
        ".SH COMMANDS",
        *commands(root, ["rescale-ssh"]),
        ".SH ENVIRONMENT",
    ]
    for name, text in ENVIRONMENT:
        out += [".TP", f"\\fB{esc(name)}\\fR", line(text)]
    out.append(".SH FILES")
    for name, text in FILES:
        out += [".TP", f"\\fI{esc(name)}\\fR", line(text)]
    out.append(".SH EXIT STATUS")
    for code, meaning, example in EXIT_CODES:
        out += [".TP", f"\\fB{code}\\fR", line(meaning + (f"; e.g. {example}" if example else ""))]
    out += [".PP", line(EXIT_CODES_NOTE)]
    out.append(".SH EXAMPLES")
    for title, text in EXAMPLES:
        out += [".PP", line(title), ".PP", ".RS", ".nf", *map(line, text.split("\n")), ".fi",
                ".RE"]
    out += [".SH SEE ALSO", "\\fBssh\\fR(1), \\fBssh_config\\fR(5), \\fBscp\\fR(1), "
            "\\fBrsync\\fR(1), \\fBssh\\-keygen\\fR(1)"]
    return "\n".join(out) + "\n"


def main() -> int:
    text = render()
    if "--check" in sys.argv[1:]:
        if not PAGE.exists() or PAGE.read_text() != text:
            print("man/rescale-ssh.1 is out of date; run python scripts/gen_man.py")
            return 1
        return 0
    PAGE.parent.mkdir(exist_ok=True)
    PAGE.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
