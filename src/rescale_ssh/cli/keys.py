"""Commands for keys, login and diagnosis: key generate/show/fingerprint/export/import, login,
logout, whoami, doctor.

Each parses, calls one core function (keys, account, doctor) and renders its result. Secrets
come from hidden prompts, files or stdin, never from an argument (it would show in ``ps``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from rescale_ssh.cli.common import JsonOut, command_group, settings_of, warn
from rescale_ssh.cli.usage import within
from rescale_ssh.errors import ExitCode, UsageError

if TYPE_CHECKING:  # cryptography loads only in the commands that use it
    from rescale_ssh.doctor.report import Report
    from rescale_ssh.keys.keypair import Written
    from rescale_ssh.settings import Settings

WHERE = ("Paste it in the Rescale web UI: account Settings → Job Settings → SSH Public Key, "
         "then Save.")
WHEN = ("Only jobs submitted after saving get it: a running cluster keeps the key it was "
        "launched with.")

key_app = command_group(
    "key",
    "Make, show and convert the SSH key your Rescale jobs are launched with.",
)

PassphraseFile = Annotated[Optional[str], typer.Option(  # noqa: UP045 - Typer needs Optional
    "--passphrase-file", metavar="FILE",
    help="Read the passphrase from the first line of FILE (never give it as an argument).",
    show_default=False)]
Force = Annotated[bool, typer.Option("--force", help="Replace an existing file.")]
MakeDefault = Annotated[Optional[bool], typer.Option(  # noqa: UP045
    "--default/--no-default",
    help="When the key is not the default identity: make it the default (identity in the "
    "settings file), or not [default: ask on a terminal, else not].", show_default=False)]


def register(app: typer.Typer) -> None:
    app.add_typer(key_app, name="key")
    app.command()(login)
    app.command()(logout)
    app.command()(whoami)
    app.command()(doctor)


# -- passphrases ----------------------------------------------------------------------------


def _ask_new(no_passphrase: bool, passphrase_file: str | None) -> Callable[[], bytes | None]:
    if no_passphrase and passphrase_file:
        raise UsageError("--no-passphrase and --passphrase-file exclude each other")

    def ask() -> bytes | None:
        from rescale_ssh.keys import keypair

        if no_passphrase:
            return None
        if passphrase_file is not None:
            secret = keypair.read_passphrase_file(passphrase_file)
            if not secret:
                raise UsageError(f"the passphrase file {passphrase_file} is empty",
                                 "use --no-passphrase for a key without a passphrase")
            return secret
        if not sys.stdin.isatty():
            raise UsageError("no passphrase: stdin is not a terminal, so nothing can ask",
                             "pass --passphrase-file FILE, or --no-passphrase")
        text: str = typer.prompt("Passphrase for the new key (empty for none)", default="",
                                 hide_input=True, confirmation_prompt=True, show_default=False)
        return text.encode("utf-8") or None

    return ask


def _ask_existing(passphrase_file: str | None, what: str) -> Callable[[], bytes | None]:
    def ask() -> bytes | None:
        from rescale_ssh.keys import keypair

        if passphrase_file is not None:
            return keypair.read_passphrase_file(passphrase_file)
        if not sys.stdin.isatty():
            raise UsageError(f"{what} is protected by a passphrase, and stdin is not a "
                             "terminal, so nothing can ask for it",
                             "pass --passphrase-file FILE")
        text: str = typer.prompt(f"Passphrase of {what}", hide_input=True)
        return text.encode("utf-8")

    return ask


# -- key ------------------------------------------------------------------------------------


@key_app.command()
def generate(
    ctx: typer.Context,
    key_type: Annotated[str, typer.Option(
        "--type", metavar="ed25519|rsa", help="Key type.")] = "ed25519",
    bits: Annotated[Optional[int], typer.Option(  # noqa: UP045
        "--bits", metavar="N", help="RSA key size (3072 or more; default 3072).",
        show_default=False)] = None,
    no_passphrase: Annotated[bool, typer.Option(
        "--no-passphrase", help="Write the key without a passphrase.")] = False,
    passphrase_file: PassphraseFile = None,
    comment: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--comment", metavar="TEXT",
        help="Comment of the public key [default: rescale-ssh@<host> <date>].",
        show_default=False)] = None,
    force: Force = False,
    make_default: MakeDefault = None,
) -> None:
    """Make a new SSH key pair at the identity path.

    Writes an OpenSSH private key (mode 0600) and its public key (.pub) to --identity
    (default ~/.ssh/rescale_ed25519). The passphrase is asked twice on a terminal, or read with
    --passphrase-file; --no-passphrase makes a key without one. Never overwrites an existing
    key without --force. A key written elsewhere (--identity) can be made the default
    identity, so that no later command needs --identity: --default, or the question asked on
    a terminal.

    Example: rescale-ssh key generate && rescale-ssh key show
    """
    from rescale_ssh.keys import keypair

    identity = settings_of(ctx).identity
    written = keypair.generate(identity, kind=key_type.lower(), bits=bits, comment=comment,
                            force=force, passphrase=_ask_new(no_passphrase, passphrase_file))
    _report_written(settings_of(ctx), written, "Replaced" if written.replaced else "Generated",
                    make_default)


def _report_written(settings: Settings, written: Written, verb: str,
                    make_default: bool | None) -> None:
    key = written.key
    protected = "with a passphrase" if key.protected else "without a passphrase"
    typer.echo(f"{verb} {key.path} ({key.public.label}, {protected})")
    typer.echo(f"  public key: {key.path}.pub")
    typer.echo(f"  fingerprint: {key.public.fingerprint}")
    default = _offer_default(settings, key.path, make_default)
    typed = _typed(key.path)
    show = "rescale-ssh key show" + ("" if default else f" --identity {typed}")
    typer.echo(f"Next: `{show}`, and paste the key in account Settings → Job Settings → SSH "
               "Public Key before submitting jobs.")
    if not default:
        typer.echo(f"  Not the default identity: give --identity {typed} to every command, or "
                   f"make it the default: `rescale-ssh config set identity {typed}`")
    if key.protected:
        typer.echo(f"  Load it into your ssh-agent once per login, or ssh asks for its "
                   f"passphrase on every connection: `ssh-add {typed}`")


def _typed(path: str) -> str:
    """``path`` as typed in a shell: ``~/...`` when that needs no quotes, else quoted."""
    import shlex

    from rescale_ssh import paths

    short = paths.shown(path)
    if short.startswith("~/") and shlex.quote(short[2:]) == short[2:]:
        return short
    return shlex.quote(path)


def _offer_default(settings: Settings, path: str, make_default: bool | None) -> bool:
    """Whether ``path`` is the default identity once this returns: it is one already (what
    commands use without --identity), or is made one (identity in the settings file) with
    --default or a yes on a terminal. Never asks without a terminal."""
    import dataclasses

    from rescale_ssh import paths, userconfig
    from rescale_ssh.cli import config
    from rescale_ssh.errors import RescaleSSHError

    plain = dataclasses.replace(settings, identity_flag=None)
    try:
        if plain.identity == path:
            return True
    except RescaleSSHError:
        pass  # a bad identity in the environment or the file: this key may replace it
    if make_default is None:
        chosen = plain.choice("identity")
        if not sys.stdin.isatty() or (chosen is not None and chosen.kind == "env"):
            return False  # (the file would not win over RESCALE_SSH_IDENTITY)
        make_default = typer.confirm(f"Make {_typed(path)} your default identity (identity "
                                     f"in {userconfig.path()})?", default=True)
    if not make_default:
        return False
    edit = userconfig.set_value("identity", paths.shown(path))
    typer.echo(f"Made it the default identity: identity = {userconfig.quoted(paths.shown(path))}"
               f" in {edit.path}")
    config.apply(plain, "identity")  # also warns when RESCALE_SSH_IDENTITY wins
    chosen = dataclasses.replace(plain).choice("identity")
    return chosen is None or chosen.kind == "file"


@key_app.command()
def show(
    ctx: typer.Context,
    no_copy: Annotated[bool, typer.Option(
        "--no-copy", help="Do not copy the key to the clipboard.")] = False,
) -> None:
    """Print the public key, and where to paste it in the Rescale web UI.

    The key goes to stdout (one line, for scripts); where to paste it goes to stderr. It is
    also copied to the clipboard when a clipboard tool is there (wl-copy, xclip, xsel,
    pbcopy, clip.exe).

    Example: rescale-ssh key show
    """
    from rescale_ssh.desktop import clipboard
    from rescale_ssh.keys import keypair

    found = keypair.inspect(settings_of(ctx).identity)
    line = found.public.line
    typer.echo(line)
    typer.echo(f"{WHERE}\n{WHEN}", err=True)
    if no_copy:
        return
    copied = clipboard.copy(line)
    if copied.tool is not None:
        typer.echo(f"Copied to the clipboard ({copied.tool}).", err=True)
    elif copied.problem:
        typer.echo(f"Not copied to the clipboard ({copied.problem}): copy the line above.",
                   err=True)
    else:
        typer.echo("No clipboard tool found (wl-copy, xclip, xsel, pbcopy, clip.exe): copy "
                   "the line above.", err=True)


@key_app.command()
def fingerprint(ctx: typer.Context) -> None:
    """Print the key's SHA256 fingerprint, as `ssh-keygen -l -f` does.

    Bits, fingerprint, comment and type: compare it with what the Rescale web UI or `doctor`
    shows for a job's key. Needs no passphrase.

    Example: rescale-ssh key fingerprint
    """
    from rescale_ssh.keys import keypair

    typer.echo(keypair.inspect(settings_of(ctx).identity).fingerprint_line())


@key_app.command("export")
def export(
    ctx: typer.Context,
    ppk: Annotated[str, typer.Option(
        "--ppk", metavar="OUT", help="Write the key in PuTTY's format (PPK version 3) to OUT.",
        show_default=False)],
    passphrase_file: PassphraseFile = None,
    force: Force = False,
) -> None:
    """Write the private key in PuTTY's .ppk format, for PuTTY and WinSCP on Windows.

    The .ppk file (version 3) is encrypted with the key's own passphrase when it has one
    (Argon2id, AES-256-CBC, HMAC-SHA-256), and is written with mode 0600. In PuTTY, choose it
    under Connection → SSH → Auth → Credentials.

    Example: rescale-ssh key export --ppk rescale.ppk
    """
    from rescale_ssh.keys import keypair

    identity = settings_of(ctx).identity
    out = os.path.abspath(os.path.expanduser(ppk))
    done = keypair.export_ppk(identity, out, force=force,
                           passphrase=_ask_existing(passphrase_file, identity))
    how = "encrypted with the key's passphrase" if done.encrypted else "not encrypted"
    typer.echo(f"Wrote {done.path} (PuTTY PPK version 3, {how}) for key {done.fingerprint}")
    typer.echo("  PuTTY: Connection → SSH → Auth → Credentials → Private key file")


@key_app.command("import")
def import_(
    ctx: typer.Context,
    path: Annotated[str, typer.Argument(
        metavar="PATH", help="An OpenSSH, PEM or PuTTY (.ppk) private key.",
        show_default=False)],
    passphrase_file: PassphraseFile = None,
    force: Force = False,
    make_default: MakeDefault = None,
) -> None:
    """Use an existing private key (OpenSSH, PEM or PuTTY .ppk) as the identity.

    The key is written to --identity in OpenSSH's format with its .pub. An OpenSSH key is
    copied as it is; a .ppk or PEM key is converted and keeps its passphrase (asked on a
    terminal, or read with --passphrase-file). Never overwrites without --force. Written
    elsewhere (--identity), it can be made the default identity: --default, or the question
    asked on a terminal.

    Example: rescale-ssh key import ~/Downloads/rescale.ppk
    """
    from rescale_ssh.keys import keypair

    source = os.path.abspath(os.path.expanduser(path))
    written = keypair.import_key(source, settings_of(ctx).identity, force=force,
                              passphrase=_ask_existing(passphrase_file, source))
    _report_written(settings_of(ctx), written, f"Imported {source} as", make_default)


# -- account --------------------------------------------------------------------------------


def login(ctx: typer.Context) -> None:
    """Store your Rescale API key, shared with the Rescale CLI.

    Asks for the key (hidden) and the platform region on a terminal; otherwise reads the key
    from the first line of stdin. The key is checked against the platform, then stored with
    the platform (apibaseurl, then apikey) in the Rescale CLI's ~/.config/rescale/apiconfig
    (or $RESCALE_CONFIG_FILE; mode 0600) under --profile, default [default], the profile every
    Rescale tool reads. Other profiles and comments stay as they are. The key is never an
    argument: it would show in `ps`.

    Example: rescale-ssh login --platform eu
    """
    from rescale_ssh.platform import account

    settings = settings_of(ctx)
    answer = None
    if sys.stdin.isatty():
        if settings.explicit_platform() is None:
            answer = typer.prompt("Platform (us, eu, jp, kr, itar, itar-gov, or a URL)",
                                  default=_region(account.stored_platform(
                                      settings, settings.profile_name or "default")))
        api_key: str = typer.prompt("API key (Settings → API in the web UI; input hidden)",
                                    hide_input=True)
    else:
        api_key = sys.stdin.readline(4096)
    result = account.login(settings, api_key, platform_answer=answer)
    typer.echo(f"Logged in to {result.account.platform} as {result.account.name}.")
    typer.echo(f"  The key is in [{result.section}] of {result.path} (shared with the Rescale "
               "CLI).")
    if result.replaced_fallback:
        typer.echo(f"  [{result.replaced_fallback}], read until now because the file had no "
                   f"[{result.section}], stays as it was; [{result.section}] is read from now "
                   "on, as by the Rescale CLI.")
    if result.moved_from is not None:
        typer.echo(f"  {result.moved_from}, where earlier versions kept the key (and the "
                   "Rescale CLI never looked), stays as it was; it is no longer read.")
    if result.env_key_wins:
        warn("RESCALE_API_KEY is set in your environment and is used instead of the stored key",
             "unset RESCALE_API_KEY")


def _region(platform: str | None) -> str:
    """The prompt's default: the stored platform as its region name when it has one."""
    from rescale_ssh.settings import REGIONS

    names = {url: name for name, url in REGIONS.items()}
    return names.get(platform or REGIONS["us"], platform or "us")


def logout(ctx: typer.Context) -> None:
    """Remove the stored API key.

    Removes `apikey` (or `api_key`) from the profile that is read: --profile, else [default]
    (in a file with no [default], as rescale-ssh 0.1.0 wrote it: the first profile) of the
    Rescale CLI's ~/.config/rescale/apiconfig; the profile's other settings and other profiles
    stay.

    Example: rescale-ssh logout
    """
    from rescale_ssh.platform import account

    result = account.logout(settings_of(ctx))
    if result.removed:
        typer.echo(f"Removed the API key from [{result.section}] of {result.path}.")
    else:
        where = f"[{result.section}] of {result.path}" if result.section else str(result.path)
        typer.echo(f"No API key stored in {where}; nothing to remove.")
    if result.env_key_set:
        warn("RESCALE_API_KEY is still set in your environment", "unset RESCALE_API_KEY")


def whoami(ctx: typer.Context, json_out: JsonOut = False) -> None:
    """Show the account and platform the API key belongs to.

    Asks the platform (users/me) with the key rescale-ssh would use, and says where that key
    comes from (RESCALE_API_KEY or a profile). --json prints username, email, platform,
    key_source and note (why that profile is read, or null).

    Example: rescale-ssh whoami --json
    """
    from rescale_ssh.platform import account

    who = account.whoami(settings_of(ctx))
    if json_out:
        import json

        typer.echo(json.dumps({"username": who.username, "email": who.email,
                               "platform": who.platform, "key_source": who.key_source,
                               "note": who.key_note},
                              indent=2))
        return
    typer.echo(f"{who.name} on {who.platform}")
    typer.echo(f"  API key from {who.key_source}")
    if who.key_note:
        typer.echo(f"  ({who.key_note})")


# -- doctor ---------------------------------------------------------------------------------


def doctor(
    ctx: typer.Context,
    job: Annotated[Optional[str], typer.Argument(  # noqa: UP045
        metavar="[JOB]", help="Also check this job's cluster (key, access, SSH port).",
        show_default=False)] = None,
    json_out: JsonOut = False,
    timeout: Annotated[float, typer.Option(
        "--timeout", metavar="SECONDS", callback=within(0.1, 60),
        help="How long the probe of the cluster's SSH port may wait (0.1 to 60).")] = 3,
    clean: Annotated[bool, typer.Option(
        "--clean", help="End shared connections of jobs that have no block any more and "
        "remove sockets no master listens on.")] = False,
) -> None:
    """Check everything a connection needs, with a fix for each problem.

    ssh and its version, the ssh config, the rescale-ssh section (at the top, not overridden),
    the hook, the jobs' shared connections (running masters, stale sockets; --clean ends and
    removes what no job uses), the key (permissions, passphrase, ssh-agent) and the API key.
    With a JOB: its
    status, the key and access restriction its cluster was launched with, the SSH port of its
    head node, and whether the cluster stops when the job ends. Exits 0 only when every check
    passes, else 1.

    Example: rescale-ssh doctor Fotxeb
    """
    from rescale_ssh.doctor import checks as core

    report = core.run(settings_of(ctx), job, probe_timeout=timeout, clean=clean)
    if json_out:
        import json

        typer.echo(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))
    else:
        typer.echo(render_report(report, unicode=_can_print("✓✗·→…")))
    if not report.ok:
        raise typer.Exit(ExitCode.FAILURE)


SYMBOLS = {"pass": "✓", "fail": "✗", "warn": "!", "info": "·", "skip": "-"}
WORDS = {"pass": "[ok]  ", "fail": "[FAIL]", "warn": "[warn]", "info": "[info]",
         "skip": "[skip]"}


def _can_print(sample: str) -> bool:
    try:
        sample.encode(sys.stdout.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def render_report(report: Report, *, unicode: bool) -> str:
    from rescale_ssh.doctor.report import FAIL, WARN

    lines = []
    for check in report.checks:
        mark = SYMBOLS[check.status] if unicode else WORDS[check.status]
        lines.append(f"{mark} {check.name}: {check.summary}")
        if check.fix:
            label = "fix" if check.status in (FAIL, WARN) else "tip"
            lines.append(f"    {label}: {check.fix}")
    total = len(report.checks)
    if report.ok:
        lines.append(f"No problem found ({total} checks).")
    else:
        lines.append(f"{report.failures} of {total} checks failed.")
    text = "\n".join(lines)
    if not unicode:
        text = text.replace("→", "->").replace("…", "...").replace("·", ".")
        text = text.encode("ascii", "replace").decode("ascii")
    return text
