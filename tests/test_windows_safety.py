"""Windows: every command but install/hook runs on Windows' own Python (README, Windows).

We cannot run Windows here, so three checks stand in for it:
- the AST of every module of the package names no POSIX-only call (fcntl, pwd, os.getuid,
  os.O_NOFOLLOW, os.kill(pid, 0), which on Windows ends the process, ...) outside posix.py;
- ``mypy --platform win32`` type-checks the package as Windows' typeshed has it (no os.getuid,
  no fcntl.flock, no socket.sendmsg): only posix.py may hold them, behind its checks;
- the real CLI runs in a subprocess that plays Windows: sys.platform is "win32", the POSIX-only
  names are gone from os, fcntl/pwd/grp/resource/termios cannot be imported, and os.kill ends
  the process (as on Windows). The libraries (Typer, requests, cryptography) are imported before
  the switch: their Windows paths are theirs to test, ours are ours.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fakeplatform import FakePlatform
from tests.helpers import IN_CI

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "rescale_ssh"
GUARD = "posix.py"

# Modules that only POSIX systems have (or only Windows: ctypes' libraries differ too).
MODULES = frozenset(("fcntl", "pwd", "grp", "termios", "tty", "pty", "resource", "posix",
                     "crypt", "spwd", "syslog", "msvcrt", "winreg", "_winapi", "ctypes"))
# Names of a module that Windows lacks, or that mean something else there.
NAMES = {
    "os": frozenset((
        "getuid", "geteuid", "getgid", "getegid", "getgroups", "getresuid", "getresgid",
        "setuid", "seteuid", "setgid", "chown", "fchown", "lchown", "fchmod", "lchmod",
        "O_NOFOLLOW", "O_DIRECTORY", "O_CLOEXEC", "O_NOCTTY", "O_NONBLOCK", "O_ASYNC",
        "fork", "forkpty", "setsid", "getsid", "killpg", "getpgid", "setpgid", "getpgrp",
        "sync", "uname", "mkfifo", "mknod", "openpty", "statvfs", "fstatvfs", "getloadavg",
        "sysconf", "pathconf", "fpathconf", "confstr", "ttyname", "ctermid", "pipe2", "nice",
        "WNOHANG", "wait", "wait3", "wait4", "posix_spawn", "posix_spawnp", "sched_getaffinity",
        "sched_setaffinity", "initgroups", "getlogin",
        "kill",  # on Windows any signal but the console events is TerminateProcess
    )),
    "signal": frozenset((
        "SIGKILL", "SIGHUP", "SIGQUIT", "SIGALRM", "SIGPIPE", "SIGCHLD", "SIGIO", "SIGTSTP",
        "SIGUSR1", "SIGUSR2", "SIGCONT", "SIGSTOP", "SIGWINCH", "SIGTTIN", "SIGTTOU", "alarm",
        "setitimer", "getitimer", "pthread_kill", "pthread_sigmask", "siginterrupt",
        "sigwait", "sigpending",
    )),
    "socket": frozenset(("AF_UNIX", "SCM_RIGHTS", "send_fds", "recv_fds", "CMSG_LEN",
                         "CMSG_SPACE", "sethostname")),
}
NAMES["_socket"] = NAMES["socket"]
METHODS = frozenset(("sendmsg", "recvmsg", "recvmsg_into"))  # socket methods Windows lacks


def posix_only_uses(source: str, filename: str) -> list[str]:
    """``file:line: what`` for each POSIX-only name ``source`` uses."""
    tree = ast.parse(source, filename)
    aliases: dict[str, str] = {}  # local name -> the module in NAMES it stands for
    found: list[str] = []

    def report(node: ast.AST, what: str) -> None:
        found.append(f"{filename}:{getattr(node, 'lineno', 0)}: {what}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                root = alias.name.split(".")[0]
                if root in MODULES:
                    report(node, f"import {alias.name}")
                if alias.name in NAMES:
                    aliases[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            root = node.module.split(".")[0]
            if root in MODULES:
                report(node, f"from {node.module} import ...")
            for alias in node.names:
                if alias.name in NAMES.get(node.module, ()):
                    report(node, f"from {node.module} import {alias.name}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id in aliases and \
                    node.attr in NAMES[aliases[node.value.id]]:
                report(node, f"{node.value.id}.{node.attr}")
            elif node.attr in METHODS:
                report(node, f".{node.attr}()")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                node.func.id in ("getattr", "hasattr") and len(node.args) >= 2:
            module, name = node.args[0], node.args[1]
            if isinstance(module, ast.Name) and module.id in aliases and \
                    isinstance(name, ast.Constant) and name.value in NAMES[aliases[module.id]]:
                report(node, f"{node.func.id}({module.id}, {name.value!r})")
    return sorted(found, key=lambda line: int(line.split(":")[1]))


def test_no_posix_only_name_outside_the_guard_module() -> None:
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 40 and PACKAGE / GUARD in modules
    found = [use for module in modules if module.name != GUARD
             for use in posix_only_uses(module.read_text(encoding="utf-8"),
                                        str(module.relative_to(PACKAGE.parent.parent)))]
    assert not found, ("POSIX-only names outside src/rescale_ssh/posix.py (Windows has none of "
                       "them; ask posix.py, which says what Windows does instead):\n"
                       + "\n".join(found))


def test_the_check_finds_each_kind_of_use() -> None:
    """The walker itself: each way of naming a POSIX-only call is found, by line."""
    source = (
        "import os, os as o, signal, _socket\n"
        "import fcntl\n"
        "from pwd import getpwuid\n"
        "from os import getuid\n"
        "o.geteuid()\n"
        "x = getattr(os, 'O_NOFOLLOW', 0)\n"
        "os.kill(1, 0)\n"
        "signal.signal(signal.SIGIO, signal.SIG_IGN)\n"
        "sock.sendmsg([b''], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, b'')])\n"
        "def f():\n"
        "    import grp\n"
        "os.getpid(); os.path.join('a'); signal.SIGINT; hasattr(os, 'getpid')\n"
    )
    found = posix_only_uses(source, "m.py")
    assert found == [
        "m.py:2: import fcntl", "m.py:3: from pwd import ...", "m.py:4: from os import getuid",
        "m.py:5: o.geteuid", "m.py:6: getattr(os, 'O_NOFOLLOW')", "m.py:7: os.kill",
        "m.py:8: signal.SIGIO", "m.py:9: .sendmsg()", "m.py:9: _socket.SCM_RIGHTS",
        "m.py:11: import grp",
    ], found


def test_the_package_type_checks_as_on_windows(tmp_path: Path) -> None:
    """mypy with Windows' typeshed (``--platform win32``): a POSIX-only name outside the
    checks in posix.py is an error (``Module has no attribute "getuid"``)."""
    try:
        import mypy  # noqa: F401
    except ImportError:
        if IN_CI:
            pytest.fail("mypy is not installed (CI=true: install the test extra)")
        pytest.skip("mypy is not installed")
    root = PACKAGE.parent.parent
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--platform", "win32", "--cache-dir",
         str(tmp_path / "mypy-cache"), "--config-file", str(root / "pyproject.toml"),
         str(PACKAGE)], capture_output=True, text=True, cwd=root, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# -- the CLI as Windows' Python runs it --------------------------------------------------------

LINE = ("Instance ready for ssh access. Command: ssh -i </path/to/key> uprod_Fotxeb@203.0.113.7; "
        "working directory: /enc/uprod_Fotxeb/work")
COMPUTER = "WINBOX"

WINDOWS = """\
import os, sys

# The libraries first, as they are (their own Windows paths are not what this test is about).
for name in ("subprocess", "shutil", "tempfile", "getpass", "ssl", "socket", "selectors",
             "http.client", "urllib.request", "uuid", "platform", "mimetypes", "ctypes",
             "typer", "click", "rich", "shellingham", "requests", "urllib3", "certifi",
             "cryptography.hazmat.primitives.serialization", "bcrypt", "filelock", "sshconf"):
    try:
        __import__(name)
    except ImportError:
        pass

for name in ("getuid", "geteuid", "getgid", "getegid", "getgroups", "chown", "fchown",
             "lchown", "fchmod", "lchmod", "fork", "forkpty", "setsid", "killpg", "getpgid",
             "uname", "sync", "getloadavg", "mkfifo", "O_NOFOLLOW", "O_DIRECTORY", "O_CLOEXEC",
             "O_NOCTTY", "O_NONBLOCK"):
    if hasattr(os, name):
        delattr(os, name)
os.supports_dir_fd = set()  # no *at calls on Windows
os.supports_follow_symlinks = {os.stat}
for name in ("fcntl", "pwd", "grp", "resource", "termios", "tty", "pty", "posix"):
    sys.modules[name] = None  # import fails

def kill(pid, sig):  # Windows: TerminateProcess(pid); here, the end of the test
    sys.stderr.write(f"os.kill({pid}, {sig}) called: on Windows that ends the process\\n")
    os._exit(99)

os.kill = kill
sys.platform = "win32"

from rescale_ssh.entry import main

sys.exit(main(sys.argv[1:]))
"""


class Windows:
    """``rescale-ssh`` in a process that plays Windows (above)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {**os.environ, "LOCALAPPDATA": str(home / "AppData" / "Local"),
                    "USERPROFILE": str(home), "COMPUTERNAME": COMPUTER}

    @property
    def state(self) -> Path:
        return self.home / "AppData" / "Local" / "rescale-ssh"

    def __call__(self, *args: str, expect: int | tuple[int, ...] = 0,
                 input: str = "") -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-c", WINDOWS, *args], input=input,
                              capture_output=True, text=True, env=self.env, timeout=120)
        shown = (f"$ rescale-ssh {' '.join(args)}\nexit {proc.returncode}\n--- stdout\n"
                 f"{proc.stdout}--- stderr\n{proc.stderr}")
        assert proc.returncode != 70 and "internal error" not in proc.stderr, shown
        assert "Traceback" not in proc.stderr, shown
        wanted = expect if isinstance(expect, tuple) else (expect,)
        assert proc.returncode in wanted, shown
        return proc


@pytest.fixture
def windows(isolated_home: Path) -> Windows:
    return Windows(isolated_home)


def test_the_simulation_is_windows(windows: Windows, tmp_path: Path) -> None:
    """The wrapper takes away what Windows lacks (else the tests below prove nothing)."""
    probe = tmp_path / "probe.py"
    probe.write_text("import os, sys\nfrom rescale_ssh import posix\n"
                     "print(sys.platform, hasattr(os, 'getuid'), posix.NOFOLLOW, posix.uid(),"
                     " posix.has_flock(), posix.can_fork(),"
                     " posix.passwd_home() == os.environ['USERPROFILE'])\n")
    code = WINDOWS.replace("from rescale_ssh.entry import main\n\nsys.exit(main(sys.argv[1:]))",
                           f"exec(open({str(probe)!r}).read())")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=windows.env, timeout=60)
    assert proc.stdout.split() == ["win32", "False", "0", "None", "False", "False",
                                   "True"], proc.stderr
    blocked = subprocess.run([sys.executable, "-c", code.replace(
        f"exec(open({str(probe)!r}).read())", "import fcntl")], capture_output=True, text=True,
        env=windows.env, timeout=60)
    assert blocked.returncode == 1 and "import of fcntl halted" in blocked.stderr


def test_local_commands_run_on_windows(windows: Windows, ssh_config: Path,
                                       tmp_path: Path) -> None:
    """The finding: ``add --from-log`` died with ``internal error (AttributeError)`` (os.getuid)."""
    added = windows("add", "Fotxeb", "--from-log", LINE)
    assert "rescale-Fotxeb" in added.stdout
    text = ssh_config.read_text()
    assert "Host rescale-Fotxeb" in text and "HostName 203.0.113.7" in text
    windows("add", "Fotxeb", "--from-log", "-", input=f"noise\n{LINE}\n")
    assert ssh_config.read_text() == text, "the same block again: nothing changed"
    listed = json.loads(windows("list", "--json").stdout)
    assert [host["job"] for host in listed] == ["Fotxeb"], listed
    assert windows("list").stdout.count("Fotxeb") >= 1
    assert windows("path", "Fotxeb", "results").stdout == \
        "rescale-Fotxeb:/enc/uprod_Fotxeb/work/results\n"
    windows("remove", "Fotxeb", "--yes")
    assert "rescale-Fotxeb" not in ssh_config.read_text()
    assert "nothing to remove" in windows("remove", "Fotxeb").stdout
    assert not list((windows.state / "locks").glob("*.held")), "every claim given back"

    identity = windows.home / ".ssh" / "rescale_ed25519"
    windows("key", "generate", "--no-passphrase")
    assert identity.is_file() and identity.with_suffix(".pub").is_file()
    shown = windows("key", "show").stdout
    assert shown.startswith("ssh-ed25519 ") and shown == identity.with_suffix(".pub").read_text()
    windows("key", "fingerprint")
    windows("key", "export", "--ppk", str(tmp_path / "rescale.ppk"))
    assert (tmp_path / "rescale.ppk").read_text().startswith("PuTTY-User-Key-File-3: ")
    windows("putty", "Fotxeb", "--from-log", LINE, "--reg", str(tmp_path / "rescale.reg"))
    assert (tmp_path / "rescale.reg").read_bytes().startswith(
        "\ufeffWindows Registry Editor Version 5.00\r\n".encode("utf-16-le"))
    assert (windows.home / ".ssh" / "rescale_ed25519.ppk").is_file()
    doctor = windows("doctor", expect=(0, 1)).stdout
    assert "rescale_ed25519" in doctor and "key permissions" not in doctor, doctor  # ACLs there
    windows("uninstall", "--yes")


def test_install_refuses_on_windows(windows: Windows, ssh_config: Path) -> None:
    for args in (("install", "--yes"), ("install", "--dry-run")):
        proc = windows(*args, expect=3)
        lines = proc.stderr.splitlines()
        assert lines[0] == ("rescale-ssh: error: install is not supported on Windows: the "
                            "hook's Match exec line needs a POSIX shell, which Windows' "
                            "OpenSSH does not run"), proc.stderr
        assert lines[1].startswith("hint: add jobs with `rescale-ssh add JOB`"), proc.stderr
        assert not ssh_config.exists()


def test_platform_commands_run_on_windows(windows: Windows, platform: FakePlatform,
                                          ssh_config: Path) -> None:
    windows.env.update(RESCALE_API_URL=platform.base_url)
    windows.env.pop("RESCALE_API_KEY", None)
    windows("login", input=f"{platform.api_key}\n")  # the profile file, made on "Windows"
    assert platform.api_key in (windows.home / ".config" / "rescale" / "apiconfig").read_text()
    windows("whoami")
    platform.add_job("Fotxeb", workdir="/enc/uprod_Fotxeb/work")
    platform.add_job("Done", status="Completed", cluster_status="Stopped")
    jobs = json.loads(windows("jobs", "--json").stdout)
    assert {job["id"] for job in jobs} >= {"Fotxeb", "Done"}, jobs
    assert "Fotxeb" in windows("status", "Fotxeb").stdout
    windows("add", "Fotxeb")
    assert "Host rescale-Fotxeb" in ssh_config.read_text()
    ssh_config.write_text("")
    windows("sync", "--yes")
    assert "Host rescale-Fotxeb" in ssh_config.read_text()
    assert windows("path", "Fotxeb").stdout == "rescale-Fotxeb:/enc/uprod_Fotxeb/work\n"
    platform.set_status("Fotxeb", "Completed", "Stopped")
    windows("prune", "--yes")
    assert "Host rescale-Fotxeb" not in ssh_config.read_text()
    windows("doctor", expect=(0, 1))
    windows("logout")
    assert platform.api_key not in (windows.home / ".config" / "rescale" / "apiconfig").read_text()


def test_the_lock_on_windows_is_the_claim_file(windows: Windows, ssh_config: Path) -> None:
    """No flock on Windows: the config's lock is the O_EXCL claim file (before, no lock was
    taken at all), and whether its holder lives is never asked with os.kill (which on Windows
    would end that process): an hour-old claim of this computer is taken over."""
    from rescale_ssh import configfile

    windows("list")  # makes the state folder
    lock = Path(configfile.lock_file(ssh_config, str(windows.state)))
    lock.parent.mkdir(parents=True, exist_ok=True)
    held = lock.with_name(lock.name + ".held")
    held.write_text(f"{os.getpid()} {COMPUTER} {time.time() - 7200:.0f} feedfeedfeed\n")
    old = time.time() - 7200
    os.utime(held, (old, old))
    windows("add", "Fotxeb", "--from-log", LINE)
    assert not held.exists(), "the abandoned claim was taken over, then given back"
    assert "Host rescale-Fotxeb" in ssh_config.read_text()
