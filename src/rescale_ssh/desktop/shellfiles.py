"""Shell completion and the man page where shells and man look for them per user.

pip and pipx put the shipped files under the environment's ``share/`` (pyproject's
shared-data). man finds them there only when that environment's ``bin`` is on PATH (man-db
derives ``<bin>/../share/man``: a venv in use works; pipx links its command into
``~/.local/bin``, so man looks in ``~/.local/share/man``, where only pipx >= 1.4 links the
page). bash-completion before 2.12 (Debian 12, Ubuntu 24.04) looks only in
``$XDG_DATA_HOME/bash-completion/completions`` and the system's folders; fish in
``$XDG_DATA_HOME/fish/vendor_completions.d`` and ``$XDG_DATA_DIRS``; zsh only in its fpath,
which holds no folder of the user's until the user adds one (README: Shell completion).

So ``install`` links the shipped files there (nothing is linked over a file that is not ours:
pipx's own man link, or the user's file, is left as it is), and records what it linked in the
state folder, so that ``uninstall`` removes exactly those links. None of these files is read
by ssh.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from rescale_ssh import paths, store

RECORD = "shell-files"  # in the state folder: what install linked, one `name=path` a line

# name: the shipped file, relative to the environment's share/ (pyproject's shared-data)
SHIPPED = {
    "bash": "bash-completion/completions/rescale-ssh",
    "zsh": "zsh/site-functions/_rescale-ssh",
    "fish": "fish/vendor_completions.d/rescale-ssh.fish",
    "powershell": "powershell/rescale-ssh.ps1",
    "man": "man/man1/rescale-ssh.1",
}


@dataclass(frozen=True)
class Linked:
    made: list[str] = field(default_factory=list)  # links made now
    present: list[str] = field(default_factory=list)  # already there (ours, or pipx's)
    left_alone: list[str] = field(default_factory=list)  # someone else's file at that place
    failed: list[str] = field(default_factory=list)  # "PATH: why" (install goes on)


def data_home() -> Path:
    value = os.environ.get("XDG_DATA_HOME", "")
    return Path(value) if value and os.path.isabs(value) else paths.home() / ".local" / "share"


def targets() -> dict[str, Path]:
    """Where each shell (and man) looks for the file, per user."""
    base = data_home()
    found = {name: base / relative for name, relative in SHIPPED.items()}
    user_dirs = os.environ.get("BASH_COMPLETION_USER_DIR", "")  # replaces the XDG place
    first = user_dirs.split(":")[0]
    if first and os.path.isabs(first):
        found["bash"] = Path(first) / "completions" / "rescale-ssh"
    # man-db maps ~/.local/bin on PATH (where pipx links the command) to ~/.local/share/man,
    # whatever XDG_DATA_HOME says; pipx links man pages there too.
    found["man"] = paths.home() / ".local" / "share" / SHIPPED["man"]
    return found


def shipped() -> dict[str, Path]:
    """The files this installation of rescale-ssh shipped, from its record of installed
    files (a wheel's or an editable install's). Empty when run from a source tree."""
    from importlib import metadata

    try:
        dist = metadata.distribution(paths.APP)
    except metadata.PackageNotFoundError:
        return {}
    wanted = {relative: name for name, relative in SHIPPED.items()}
    found: dict[str, Path] = {}
    for entry in dist.files or []:
        parts = PurePosixPath(str(entry)).parts
        if "share" not in parts:
            continue
        relative = "/".join(parts[parts.index("share") + 1:])
        if relative in wanted:
            located = Path(str(dist.locate_file(entry))).resolve()
            if located.is_file():
                found[wanted[relative]] = located
    return found


def _record_path(state_dir: str) -> str:
    return os.path.join(state_dir, RECORD)


def recorded(state_dir: str) -> dict[str, str]:
    record = store.read_record(_record_path(state_dir), frozenset(SHIPPED)) or {}
    return {name: path for name, path in record.items() if name in SHIPPED}


def _points_at(link: Path, source: Path) -> bool:
    try:
        return link.is_symlink() and link.resolve() == source
    except OSError:
        return False


def link(state_dir: str) -> Linked:
    """Link each shipped file where its shell looks, unless a file that is not one of our
    links is there. A link of ours that points elsewhere (a moved environment) is replaced."""
    sources = shipped()
    ours = recorded(state_dir)
    result = Linked()
    keep: dict[str, str] = {}
    for name, target in targets().items():
        source = sources.get(name)
        if source is None:  # not shipped by this installation: keep what we know of
            if name in ours:
                keep[name] = ours[name]
            continue
        if _points_at(target, source):
            result.present.append(str(target))
            if ours.get(name) == str(target):
                keep[name] = str(target)
            continue
        if os.path.lexists(target) and not (ours.get(name) == str(target)
                                            and target.is_symlink()):
            result.left_alone.append(str(target))
            continue
        try:
            if os.path.lexists(target):
                target.unlink()
            paths.private_dir(target.parent)  # folders it makes: 0700, as XDG asks
            os.symlink(source, target)
        except OSError as exc:
            result.failed.append(f"{target}: {exc.strerror or exc}")
            continue
        keep[name] = str(target)
        result.made.append(str(target))
    if keep != ours:
        store.write_atomic(_record_path(state_dir), store.format_record(keep))
    return result


def linked(state_dir: str) -> list[str]:
    """The links install made that are still such links (uninstall removes these)."""
    found = []
    for name, path in recorded(state_dir).items():
        try:
            ours = os.path.basename(os.readlink(path)) == PurePosixPath(SHIPPED[name]).name
        except OSError:  # gone, or no longer a link: the user's now
            continue
        if ours:
            found.append(path)
    return found


def unlink(state_dir: str) -> list[str]:
    removed = linked(state_dir)
    for path in removed:
        os.unlink(path)
    return removed
