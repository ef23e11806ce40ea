"""Test isolation shared by every test.

The autouse fixture points HOME, the XDG folders, RESCALE_SSH_CONFIG and the Rescale settings
into ``tmp_path`` and fails the test if the real ``~/.ssh`` (taken from the passwd entry, as ssh
does) changed while it ran.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import Cli

# Fixture plugins: the fake Rescale platform, the real sshd, the hostile-input tests' world.
pytest_plugins = ["tests.fakeplatform", "tests.sshd", "tests.hostile"]

# Counts the adversarial tests report at the end of the run (hostile inputs refused, faults
# survived, writers killed): the figures issue 7 asks for, printed by pytest_terminal_summary.
FIGURES = pytest.StashKey[dict[str, int]]()

_ENV_TO_CLEAR = (
    "RESCALE_API_KEY",
    "RESCALE_API_URL",
    "RESCALE_API_BASE_URL",
    "RESCALE_CONFIG_FILE",
    "RESCALE_PROFILE",
    "RESCALE_SSH_IDENTITY",
    "RESCALE_SSH_DEBUG",
    "SSH_AUTH_SOCK",
)


def _snapshot(path: Path) -> list[tuple[str, int, int]]:
    if not path.exists():
        return []
    found = []
    for item in [path, *sorted(path.rglob("*"))]:
        try:
            info = item.lstat()
        except FileNotFoundError:
            continue
        found.append((str(item), info.st_mtime_ns, info.st_size))
    return found


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for variable, sub in (
        ("XDG_CONFIG_HOME", ".config"),
        ("XDG_CACHE_HOME", ".cache"),
        ("XDG_STATE_HOME", ".local/state"),
        ("XDG_DATA_HOME", ".local/share"),
    ):
        monkeypatch.setenv(variable, str(home / sub))
    monkeypatch.setenv("RESCALE_SSH_CONFIG", str(home / ".ssh" / "config"))
    for variable in _ENV_TO_CLEAR:
        monkeypatch.delenv(variable, raising=False)
    real_ssh = Path(pwd.getpwuid(os.getuid()).pw_dir) / ".ssh"
    before = _snapshot(real_ssh)
    yield home
    assert _snapshot(real_ssh) == before, f"the test touched the real {real_ssh}"


@pytest.fixture
def ssh_config(isolated_home: Path) -> Path:
    """The managed ssh config path (not created)."""
    return isolated_home / ".ssh" / "config"


@pytest.fixture
def cli(isolated_home: Path) -> Cli:
    """Runs the installed console script in a subprocess with the isolated environment."""
    return Cli()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[FIGURES] = {}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    tally = terminalreporter.config.stash.get(FIGURES, {})
    if tally:
        terminalreporter.section("adversarial figures")
        for name, count in sorted(tally.items()):
            terminalreporter.write_line(f"{name}: {count}")


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Callable[[str, int], None]:
    """``figures(name, n)`` adds ``n`` to a count shown at the end of the run."""
    tally = request.config.stash[FIGURES]

    def add(name: str, count: int = 1) -> None:
        tally[name] = tally.get(name, 0) + count

    return add


@pytest.fixture
def short_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """XDG_STATE_HOME short enough for the jobs' socket paths (mux.py: 104 bytes; pytest's
    folders are deeper, so elsewhere the blocks rightly get no Control lines). Every master
    in it is ended with the test."""
    import shutil
    import tempfile

    from rescale_ssh.sshconfig import mux

    root = Path(tempfile.mkdtemp(prefix="rsm", dir="/tmp"))
    monkeypatch.setenv("XDG_STATE_HOME", str(root))
    state = root / "rescale-ssh"
    try:
        yield state
    finally:
        for path in mux.sockets(str(state)):
            mux.control(path, "exit")
        shutil.rmtree(root, ignore_errors=True)
