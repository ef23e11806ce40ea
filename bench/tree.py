"""The rescale-ssh a sandbox runs: the interpreter's own (its console script), or the ``src``
folder of another checkout (``--baseline``), started by a launcher written for it.

Every tree runs in processes of its own: the benchmark never imports a tree's modules, so two
trees never mix in one process. A tree's ``install`` writes its own launcher into hook.conf and
the hook's script; the interpreter is the same for every tree (the benchmark's)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# The console script's lines, with the tree's folder first on sys.path (before the
# interpreter's own installation, an editable one included: a path entry of a .pth file).
LAUNCHER = """\
#!{python}
import sys
sys.path.insert(0, {src!r})
from rescale_ssh.entry import main
sys.exit(main())
"""
WHERE = "import rescale_ssh, sys; sys.stdout.write(rescale_ssh.__file__)"


@dataclass(frozen=True)
class Tree:
    label: str  # "this tree" / "baseline"
    python: str
    cli: str  # an executable: the console script, or the launcher of ``src``
    src: Path | None = None  # None: the interpreter's installed package

    @classmethod
    def installed(cls, python: str, cli: str) -> Tree:
        return cls("this tree", python, cli)

    @classmethod
    def checkout(cls, label: str, python: str, src: Path, folder: Path) -> Tree:
        """The package in ``src`` (a checkout's src folder), through a launcher in ``folder``
        named like the console script (Typer takes the program's name from argv[0])."""
        folder.mkdir(parents=True, exist_ok=True)
        launcher = folder / "rescale-ssh"
        launcher.write_text(LAUNCHER.format(python=python, src=str(src)))
        launcher.chmod(0o755)
        return cls(label, python, str(launcher), src)

    def key(self, name: str) -> str:
        """The name of this tree's subject ``name`` among both trees' (an interleave's keys)."""
        return name if self.src is None else f"{self.label}:{name}"

    def script(self, code: str, *args: str) -> list[str]:
        """``python -c CODE ARGS`` importing this tree's package."""
        head = "" if self.src is None else f"import sys; sys.path.insert(0, {str(self.src)!r})\n"
        return [self.python, "-c", head + code, *args]


def is_source(src: Path) -> bool:
    """Whether ``src`` holds a rescale_ssh package with the console script's entry point."""
    return (src / "rescale_ssh" / "entry.py").is_file()
