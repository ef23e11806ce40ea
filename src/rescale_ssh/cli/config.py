"""Commands for the settings file: config show/set/unset/path.

Each parses, calls one core function (userconfig, settings) and renders its result.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Annotated

import typer

from rescale_ssh import userconfig
from rescale_ssh.cli.common import JsonOut, command_group, settings_of, warn
from rescale_ssh.settings import Settings

config_app = command_group(
    "config",
    "Keep your identity, platform, profile and ssh config in a settings file, so that no "
    "command needs the flag.",
)

KEY_NAMES = ", ".join(userconfig.KEYS)


def _complete_key(incomplete: str) -> list[str]:
    return [key for key in userconfig.KEYS if key.startswith(incomplete)]


KeyArg = Annotated[str, typer.Argument(
    metavar="KEY", help=f"One of {KEY_NAMES}.", show_default=False,
    autocompletion=_complete_key)]


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")


@config_app.command()
def show(ctx: typer.Context, json_out: JsonOut = False) -> None:
    """Show each setting, its value now, and what chose it.

    The sources, first one wins: a flag, an environment variable, the settings file
    (`rescale-ssh config path`), then the default (for platform: the profile's apibaseurl,
    then us). --json prints file, exists and settings: a list of objects with key, value,
    source (flag, env, file, profile or default) and origin (which flag, variable, line or
    profile).

    Example: rescale-ssh config show --json
    """
    settings = settings_of(ctx)
    found = settings.explain()
    path = userconfig.path()
    exists = userconfig.load().exists
    if json_out:
        import json

        typer.echo(json.dumps({"file": path, "exists": exists, "settings": [
            {"key": item.key, "value": item.value or None, "source": item.kind,
             "origin": item.origin or None} for item in found]}, indent=2))
        return
    typer.echo(f"Settings file: {path}" + ("" if exists else " (none yet)"))
    width = max(len(item.value or "(none)") for item in found)
    for item in found:
        where = f"{item.kind}: {item.origin}" if item.origin else item.kind
        typer.echo(f"  {item.key:<10}  {item.value or '(none)':<{width}}  ({where})")


@config_app.command("set")
def set_(
    ctx: typer.Context,
    key: KeyArg,
    value: Annotated[str, typer.Argument(
        metavar="VALUE", help="A path (identity, ssh_config), a URL or region (platform), "
        "a profile name, or for multiplex yes, no or a time (5m).", show_default=False)],
) -> None:
    """Write one setting to the settings file, checked as its flag would be.

    The line `KEY = "VALUE"` replaces the one that set KEY, or is added at the end; comments
    and other lines stay as they are. A relative path is stored absolute; one starting with
    ~ is kept so. With the hook installed, its settings are updated too (identity, platform,
    profile, multiplex): no need to run `install` again. multiplex is how long a job's
    shared connection stays after its last session (no: none is shared).

    Example: rescale-ssh config set multiplex 30m
    """
    from rescale_ssh.settings import for_file

    userconfig.known_key(key)
    stored = for_file(key, value)
    if key == "profile":
        _check_profile(settings_of(ctx), stored)
    edit = userconfig.set_value(key, stored)
    if edit.changed:
        typer.echo(f"Set {key} = {userconfig.quoted(stored)} in {edit.path}")
    else:
        typer.echo(f"{key} is already {userconfig.quoted(stored)} in {edit.path}; no change")
    apply(settings_of(ctx), key)
    if key == "identity" and not os.path.exists(os.path.expanduser(stored)):
        warn(f"there is no key at {stored} yet",
             f"`rescale-ssh key generate --identity {stored}` makes one, or `rescale-ssh key "
             f"import PATH --identity {stored}` copies one there")


@config_app.command()
def unset(ctx: typer.Context, key: KeyArg) -> None:
    """Remove one setting from the settings file: its default applies again.

    Removes the line that sets KEY; comments and other lines stay. Any key the file holds can
    be removed, also one this version does not know. With the hook installed, its settings
    are updated too.

    Example: rescale-ssh config unset platform
    """
    edit = userconfig.unset(key)
    if edit.changed:
        typer.echo(f"Removed {key} from {edit.path}")
    else:
        typer.echo(f"{key} is not set in {edit.path}; nothing to remove")
    if key in userconfig.KEYS:
        apply(settings_of(ctx), key)


@config_app.command()
def path() -> None:
    """Print where the settings file is (it may not exist yet).

    $XDG_CONFIG_HOME/rescale-ssh/config.toml, else ~/.config/rescale-ssh/config.toml. It
    holds `key = "value"` lines (identity, platform, profile, ssh_config, multiplex),
    comments and blank lines; `config set` makes it, mode 0600.

    Example: "$EDITOR" "$(rescale-ssh config path)"
    """
    typer.echo(userconfig.path())


def apply(settings: Settings, key: str) -> None:
    """After the file changed: say what still wins over it, and bring the installed hook's
    settings up to date (hook.conf: the hook never reads the file)."""
    from rescale_ssh.cli.common import guard

    # Read the file anew; a flag given to `config` itself is no setting to keep.
    flags: dict[str, str | None] = {f"{key}_flag": None} if key != "ssh_config" else {}
    fresh = dataclasses.replace(settings, **flags)  # type: ignore[arg-type]
    chosen = fresh.choice(key)
    if chosen is not None and chosen.kind == "env":
        warn(f"{chosen.source} is set in your environment and wins over the settings file",
             f"unset {chosen.source}")
    if key not in userconfig.HOOK_KEYS:
        return
    guard(fresh, "config")
    from rescale_ssh.sshconfig import toolfiles

    done = toolfiles.update_hook(fresh, key)
    if done is None:
        return
    typer.echo(f"Updated the installed hook's {key} in {done.path}: "
               f"{done.before or '(default)'} → {done.after or '(default)'}")
    for job in done.stale:
        typer.echo(f"  rescale-{job}, written by `add`, still names its earlier IdentityFile: "
                   f"`rescale-ssh add {job}` rewrites it")


def _check_profile(settings: Settings, name: str) -> None:
    """A profile the apiconfig does not have (yet: `login` makes it) is only a warning."""
    import configparser

    path = settings.profile_path
    parser = configparser.RawConfigParser()
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except (OSError, UnicodeDecodeError, configparser.Error):
        return
    if not parser.has_section(name):
        warn(f"profile {name!r} is not in {path} (yet)",
             f"`rescale-ssh login` stores your API key there under [{name}]")
