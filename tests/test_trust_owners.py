"""Issue 14, item 1: ownership and modes, the way ssh checks them, with real users.

Run as root (CI is root): the victim is the real user ``nobody``, whose home lives in a folder
every user can reach; root plays the sudo mistake and the other user. Every program runs as a
separate process under its own uid (``rescale-ssh`` from a copy of the package that ``nobody``
can read, ``ssh -G`` for what ssh makes of the config).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import IN_CI, Result, require

LINE = ("Instance ready for ssh access. Command: ssh -i </path/to/key> uprod_Fotxeb@203.0.113.7; "
        "working directory: /enc/uprod_Fotxeb/work")
SRC = Path(__file__).resolve().parents[1] / "src" / "rescale_ssh"


@dataclass
class World:
    base: Path
    home: Path
    pkg: Path
    uid: int
    gid: int
    python: str = sys.executable
    path: str = ""

    @property
    def config(self) -> Path:
        return self.home / ".ssh" / "config"

    @property
    def state(self) -> Path:
        return self.home / ".local" / "state" / "rescale-ssh"

    def env(self, **extra: str) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items()
                if k in ("PATH", "LANG", "LC_ALL", "CI", "SYSTEMROOT")}
        return {**keep, "HOME": str(self.home), "PYTHONPATH": self.path or str(self.pkg),
                "XDG_CONFIG_HOME": str(self.home / ".config"),
                "XDG_STATE_HOME": str(self.home / ".local" / "state"),
                "XDG_CACHE_HOME": str(self.home / ".cache"),
                "RESCALE_SSH_TIMEOUT": "3", **extra}

    def run(self, *args: str, user: bool = True, env: dict[str, str] | None = None,
            expect: int | None = 0) -> Result:
        """``rescale-ssh`` as ``nobody`` (``user``) or as root, with nobody's HOME."""
        return self._run([self.python, "-m", "rescale_ssh", *args], user, env, expect)

    def ssh_g(self, host: str, *, expect: int | None = 0) -> Result:
        return self._run([require("ssh"), "-G", "-F", str(self.config), host], True, None,
                         expect)

    def _run(self, argv: list[str], user: bool, env: dict[str, str] | None,
             expect: int | None) -> Result:
        def drop() -> None:
            os.setgroups([])
            os.setgid(self.gid)
            os.setuid(self.uid)

        proc = subprocess.run(argv, capture_output=True, text=True, env=env or self.env(),
                              timeout=60, stdin=subprocess.DEVNULL, cwd=self.base,
                              preexec_fn=drop if user else None)
        result = Result(argv, proc.returncode, proc.stdout, proc.stderr)
        if expect is not None:
            assert proc.returncode == expect, str(result)
        return result

    def owned_by_root(self) -> list[Path]:
        return [p for p in [self.home, *self.home.rglob("*")] if p.lstat().st_uid == 0]


@pytest.fixture
def world() -> Iterator[World]:
    if os.geteuid() != 0:
        if IN_CI:
            pytest.fail("CI runs as root: these tests need real users")
        pytest.skip("needs root (to play another user)")
    nobody = pwd.getpwnam("nobody")
    base = Path(tempfile.mkdtemp(prefix="rescale-ssh-owners-", dir="/tmp"))
    try:
        base.chmod(0o755)
        pkg = base / "pkg"
        shutil.copytree(SRC, pkg / "rescale_ssh",
                        ignore=shutil.ignore_patterns("__pycache__"))
        for path in [pkg, *pkg.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        home = base / "home"
        (home / ".ssh").mkdir(parents=True)
        (home / ".ssh" / "config").write_text("Host github.com\n  User git\n")
        for path in [home, *home.rglob("*")]:
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
            path.chmod(0o700 if path.is_dir() else 0o600)
        made = World(base, home, pkg, nobody.pw_uid, nobody.pw_gid)
        made.python, made.path = interpreter(made)
        yield made
    finally:
        shutil.rmtree(base, ignore_errors=True)


def interpreter(world: World) -> tuple[str, str]:
    """A Python that ``nobody`` can run, with this one's packages: this one (CI: a venv of the
    system's), else the system's of the same version (a Python under /root is out of reach)."""
    import site
    import sysconfig

    path = os.pathsep.join([str(world.pkg), *site.getsitepackages()])
    version = sysconfig.get_python_version()
    for candidate in (sys.executable, f"/usr/bin/python{version}"):
        if not os.path.exists(candidate):
            continue
        world.python, world.path = candidate, path
        try:
            probe = world._run([candidate, "-c", "import rescale_ssh, requests, sshconf"], True,
                               None, None)
        except PermissionError:  # the interpreter itself is out of reach
            continue
        if probe.returncode == 0:
            return candidate, path
    pytest.fail("no Python that the user nobody can run with this one's packages")


def one_line_error(result: Result) -> str:
    lines = result.stderr.splitlines()
    assert "Traceback" not in result.stderr, result
    assert lines and lines[0].startswith("rescale-ssh: error: "), result
    assert all(line.startswith(("rescale-ssh: error: ", "hint: ")) for line in lines), result
    return result.stderr


def test_root_with_a_users_home_writes_nothing_there(world: World) -> None:
    """`sudo -E rescale-ssh path X`: root-owned files appeared in the user's state folder, and
    from then on every ssh of the user to any host failed."""
    for args in (("add", "Fotxeb", "--from-log", LINE), ("path", "Fotxeb"),
                 ("install", "--yes"), ("key", "generate")):
        result = world.run(*args, user=False, expect=3)
        error = one_line_error(result)
        assert f"running as root on the files of nobody (uid {world.uid})" in error
        assert "hint: run rescale-ssh as that user, without sudo" in error
        assert world.owned_by_root() == [], args
    # The user's own run works, and root's refusal leaves it working.
    world.run("add", "Fotxeb", "--from-log", LINE)
    world.run("add", "Fotxeb", "--from-log", LINE, user=False, expect=3)
    assert world.owned_by_root() == []
    assert "hostname 203.0.113.7" in world.ssh_g("rescale-Fotxeb").stdout.splitlines()
    assert "user git" in world.ssh_g("github.com").stdout.splitlines()
    # Reading commands still run as root.
    assert "rescale-Fotxeb" in world.run("list", user=False).stdout


def test_a_root_owned_file_in_the_state_folder_is_named_with_its_fix(world: World) -> None:
    world.run("add", "Fotxeb", "--from-log", LINE)
    included = world.state / "ssh.conf"
    os.chown(included, 0, 0)  # what a sudo run of an earlier version left
    included.chmod(0o600)
    assert world.ssh_g("github.com", expect=255).stderr  # every host: ssh stops at it
    error = one_line_error(world.run("add", "Ptczhb", "--from-log",
                                     LINE.replace("Fotxeb", "Ptczhb"), expect=3))
    assert f"{included} is owned by root (uid 0), not by you (nobody (uid {world.uid}))" in error
    assert f"hint: remove it (`sudo rm -rf` {included})" in error
    doctor = json.loads(world.run("doctor", "--json", expect=1).stdout)["checks"]
    assert ("state folder", "fail") in [(c["name"], c["status"]) for c in doctor]
    # uninstall is the way out, as the user: ssh works again for every host.
    world.run("uninstall", "--yes")
    assert "user git" in world.ssh_g("github.com").stdout.splitlines()


def test_a_state_folder_others_can_write_is_refused(world: World) -> None:
    """XDG_STATE_HOME on a shared, world-writable place was accepted: another user replaced
    the hook script, and it ran as the victim on their next `ssh rescale-X`."""
    shared = world.base / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # writable by all, not sticky
    env = world.env(XDG_STATE_HOME=str(shared))
    error = one_line_error(world.run("install", "--yes", env=env, expect=3))
    assert f"{shared} (above the state folder {shared}/rescale-ssh) is writable by group or " \
           "others (mode 0777)" in error
    assert list(shared.iterdir()) == []
    # A folder another user made for us there: theirs, refused.
    theirs = world.base / "theirs"
    (theirs / "rescale-ssh").mkdir(parents=True)
    theirs.chmod(0o755)
    (theirs / "rescale-ssh").chmod(0o755)
    error = one_line_error(world.run("add", "Fotxeb", "--from-log", LINE,
                                     env=world.env(XDG_STATE_HOME=str(theirs)), expect=3))
    assert f"{theirs}/rescale-ssh is owned by root (uid 0), not by you" in error
    assert "hint: set XDG_STATE_HOME to a folder of your own" in error


def test_files_ssh_would_refuse_are_named_and_the_hook_refuses_them(world: World) -> None:
    """A group-writable file that ssh includes stops ssh for every host ("Bad owner or
    permissions"); the hook must not run from a folder others can write."""
    world.run("install", "--yes", env=world.env(RESCALE_API_KEY="k" * 40,
                                                 RESCALE_API_URL="http://127.0.0.1:9"))
    included = world.state / "ssh.conf"
    included.chmod(0o666)
    assert "Bad owner or permissions" in world.ssh_g("github.com", expect=255).stderr
    error = one_line_error(world.run("add", "Fotxeb", "--from-log", LINE, expect=3))
    assert f"{included} is writable by group or others (mode 0666)" in error
    assert f"hint: run `chmod go-w {included}`" in error
    included.chmod(0o644)
    world.state.chmod(0o777)
    hook = world.run("hook", "--state", str(world.state), "rescale-Fotxeb", expect=3)
    assert one_line_error(hook).splitlines()[0] == (
        f"rescale-ssh: error: {world.state} is writable by group or others (mode 0777)")
    assert not (world.state / "jobs" / "Fotxeb").exists()
    world.state.chmod(0o700)
    world.run("uninstall", "--yes")
    assert "user git" in world.ssh_g("github.com").stdout.splitlines()


def test_a_home_writable_by_the_users_own_group_only_is_fine(world: World) -> None:
    """Some distributions make homes 0775 with a private group per user: that group is the
    user alone, so a folder above the state folder may be writable by it; by another group
    it may not."""
    from rescale_ssh import ownership

    if os.geteuid() != 0:
        pytest.skip("needs root")
    import grp

    root_group = grp.getgrgid(0)
    if root_group.gr_name != "root" or [m for m in root_group.gr_mem if m != "root"]:
        pytest.skip("root's group is not a private group here")
    above = world.base / "above"
    state = above / "rescale-ssh"
    state.mkdir(parents=True, mode=0o700)
    above.chmod(0o775)
    os.chown(above, 0, 0)
    assert ownership.problems(str(state), 0) == []
    os.chown(above, 0, world.gid)  # another group (nogroup) may write there: refused
    found = ownership.problems(str(state), 0)
    assert [p.path for p in found] == [str(above)], found


def test_a_link_on_the_path_in_a_folder_others_can_write_is_refused(world: World) -> None:
    """Only the resolved path's folders were checked; ssh uses the path as written, and a
    link on it that sits in a folder others can write can be swapped for theirs."""
    from rescale_ssh import ownership

    real = world.base / "real"
    (real / "state" / "rescale-ssh").mkdir(parents=True, mode=0o700)
    real.chmod(0o755)
    shared = world.base / "shared2"
    shared.mkdir()
    shared.chmod(0o777)
    (shared / "local").symlink_to(real)
    found = ownership.problems(str(shared / "local" / "state" / "rescale-ssh"), 0)
    assert [p.path for p in found] == [str(shared)], found
    assert ownership.problems(str(real / "state" / "rescale-ssh"), 0) == []
