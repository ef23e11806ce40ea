"""``forward JOB SPEC...``: one-off port forwards to a job, held until Ctrl-C, then removed.

What OpenSSH 9.2 does, measured (tests/sshconfig/test_forward.py): with a live master
(ControlMaster), ``ssh -N -L ...`` hands the forward to the master and exits at once, leaving
the forward in the master; with ``ControlMaster auto`` and ``ControlPersist`` but no master, it
forks a master into the background and exits, the forward again left behind. A master whose only
users are forwards expires after ControlPersist, forwards and all. And ``ssh -O cancel`` with
the job's config also cancels every ``LocalForward`` of the config (saved ones, VS Code's).

So the forwards are added to a master with ``ssh -O forward`` and removed with ``ssh -O
cancel``, both run with ``-F none -S <control path>``: no config, no forwards but ours:
- the job's shared master (ControlPath in its config) when one is running, or one is started
  the way any ``ssh rescale-JOB`` would (ControlMaster auto, ControlPersist); ``ssh -O proxy``
  stays connected meanwhile, so the master does not expire under the forwards, and ends when
  the master does (the connection dropped);
- else a private master of our own (a 0700 temporary folder, ClearAllForwardings: the block's
  saved forwards are not bound twice), ended with the command.
Ctrl-C (or SIGTERM, SIGHUP) cancels what was added; nothing stays listening. Windows'
OpenSSH has no ControlMaster: the command says what to run instead.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from rescale_ssh import posix
from rescale_ssh.cli.boundary import Interrupted
from rescale_ssh.errors import ProgramError
from rescale_ssh.settings import Settings
from rescale_ssh.sshconfig.hostblock import FORWARD_BIND, Forward

READY_TIMEOUT = 120.0  # seconds to wait for a private master to log in (prompts included)
MUX_TIMEOUT = 15.0  # seconds an `ssh -O` request may take (a local socket)
TRUE_VALUES = ("true", "yes", "auto", "ask", "autoask")


@dataclass
class Ended:
    """How a tunnel ended: a signal (Ctrl-C: SIGINT), or ssh's exit status."""

    signal: int | None = None
    code: int = 0
    shared: bool = False
    forwards: list[Forward] = field(default_factory=list)


class Ssh:
    """The system ssh for one alias, with the config the settings name."""

    def __init__(self, settings: Settings, alias: str, program: str | None = None) -> None:
        found = program or shutil.which("ssh")
        if found is None:
            raise ProgramError("ssh is not installed or not on PATH",
                               "install OpenSSH's client (the openssh-client package)")
        self.program = found
        self.alias = alias
        default = Path(posix.passwd_home()) / ".ssh" / "config"
        # ssh reads only ~/.ssh/config by itself (shell.py does the same)
        self.config = [] if settings.ssh_config == default else ["-F", str(settings.ssh_config)]

    def words(self, *options: str) -> list[str]:
        return [self.program, *self.config, *options, self.alias]

    def mux(self, path: str, *options: str) -> list[str]:
        """An ``ssh -O`` request to the master at ``path``, no config read: nothing but the
        forwards named here is sent (or cancelled)."""
        return [self.program, "-F", "none", "-S", path, *options, self.alias]

    def effective(self) -> dict[str, str]:
        """``ssh -G``: the options ssh would use (first value of each)."""
        proc = _run(self.words("-G"))
        if proc.returncode != 0:
            raise ProgramError(f"`ssh -G {self.alias}` failed (exit {proc.returncode}): "
                               f"{proc.stderr.strip()[:200]}",
                               "`rescale-ssh doctor` checks the ssh config")
        options: dict[str, str] = {}
        for line in proc.stdout.splitlines():
            key, _, value = line.partition(" ")
            options.setdefault(key, value)
        return options

    def alive(self, path: str) -> bool:
        return _run(self.mux(path, "-O", "check")).returncode == 0


def _run(words: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(words, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=MUX_TIMEOUT)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(words, 255, "", f"no answer in {MUX_TIMEOUT:.0f} s")
    except OSError as exc:
        raise ProgramError(f"cannot run `{words[0]}`: {exc.strerror or exc}",
                           "install OpenSSH's client (the openssh-client package)") from None


def forward_option(forward: Forward) -> str:
    local, host, remote = forward
    far = f"[{host}]" if ":" in host else host
    return f"{FORWARD_BIND}:{local}:{far}:{remote}"


def shared_master(ssh: Ssh) -> tuple[str | None, int]:
    """The control path of the job's shared master, started if the config wants one (as the
    first ``ssh rescale-JOB`` would), and ssh's status; no path when the config shares no
    connection."""
    options = ssh.effective()
    path = options.get("controlpath", "none")
    if path == "none":
        return None, 0
    if ssh.alive(path):
        return path, 0
    if options.get("controlmaster") not in TRUE_VALUES or \
            options.get("controlpersist", "no") in ("no", "false", "0"):
        return None, 0  # a master now would end with this command, and others' sessions in it
    # With ControlPersist, ssh puts the master in the background once logged in, and exits.
    try:
        code = subprocess.run(ssh.words("-N", "-o", "ControlMaster=auto"),
                              timeout=READY_TIMEOUT).returncode
    except subprocess.TimeoutExpired:
        code = 255
    except OSError as exc:
        raise ProgramError(f"cannot run `{ssh.program}`: {exc.strerror or exc}",
                           "install OpenSSH's client (the openssh-client package)") from None
    return (path if code == 0 and ssh.alive(path) else None), code


def run(settings: Settings, alias: str, forwards: list[Forward], *,
        opened: Callable[[Ended], None], ssh_program: str | None = None) -> Ended:
    """Hold ``forwards`` (127.0.0.1:LOCAL -> HOST:PORT, HOST as the head sees it) until a
    signal or the connection ends; ``opened`` is called once every forward listens."""
    if posix.windows():
        local, host, remote = forwards[0]
        raise ProgramError(
            "`forward` needs OpenSSH's connection sharing (ControlMaster), which OpenSSH for "
            "Windows does not have",
            f"run ssh's own forward instead: ssh -N -L {local}:{host}:{remote} {alias}")
    ssh = Ssh(settings, alias, ssh_program)
    with _signals_end_it() as caught:
        try:
            path, code = shared_master(ssh)
        except Interrupted:
            return Ended(signal=caught[0] if caught else signal.SIGINT)
        if code != 0:
            return Ended(code=code)  # ssh said why (it could not log in)
        if path is not None:
            return _on_shared(ssh, path, forwards, opened, caught)
        return _on_private(ssh, forwards, opened, caught)


def _add(ssh: Ssh, path: str, forwards: list[Forward], added: list[Forward]) -> None:
    for forward in forwards:
        proc = _run(ssh.mux(path, "-O", "forward", "-L", forward_option(forward)))
        if proc.returncode != 0:
            said = " ".join(proc.stderr.split())[:200]
            raise ProgramError(f"could not forward localhost:{forward[0]} ({said})",
                               "is that port in use? choose another: REMOTE_PORT:LOCAL_PORT")
        added.append(forward)


def _on_shared(ssh: Ssh, path: str, forwards: list[Forward], opened: Callable[[Ended], None],
               caught: list[int]) -> Ended:
    ended = Ended(shared=True, forwards=forwards)
    added: list[Forward] = []
    holder: subprocess.Popen[bytes] | None = None
    try:
        # Stays connected to the master (so ControlPersist does not end it under the forwards)
        # until its stdin closes; exits when the master does.
        holder = subprocess.Popen(ssh.mux(path, "-T", "-O", "proxy"), stdin=subprocess.PIPE,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _add(ssh, path, forwards, added)
        opened(ended)
        ended.code = holder.wait()
    except Interrupted:
        ended.signal = caught[0] if caught else signal.SIGINT
    finally:
        with _ignoring_interrupts():
            for forward in added:
                _run(ssh.mux(path, "-O", "cancel", "-L", forward_option(forward)))
            if holder is not None:
                _stop(holder)
    return ended


def _on_private(ssh: Ssh, forwards: list[Forward], opened: Callable[[Ended], None],
                caught: list[int]) -> Ended:
    ended = Ended(forwards=forwards)
    folder = tempfile.mkdtemp(prefix="rescale-ssh-")  # 0700; a socket path is ~104 bytes at most
    path = f"{folder}/m"
    master: subprocess.Popen[bytes] | None = None
    try:
        master = subprocess.Popen(ssh.words(
            "-N", "-o", "ControlMaster=yes", "-o", f"ControlPath={path}",
            "-o", "ControlPersist=no", "-o", "ClearAllForwardings=yes"))
        deadline = time.monotonic() + READY_TIMEOUT
        while not ssh.alive(path):
            status = master.poll()
            if status is not None or time.monotonic() > deadline:
                ended.code = 255 if status is None else status
                return ended
            time.sleep(0.05)
        _add(ssh, path, forwards, [])
        opened(ended)
        ended.code = master.wait()
    except Interrupted:
        ended.signal = caught[0] if caught else signal.SIGINT
    finally:
        with _ignoring_interrupts():
            if master is not None:
                if master.poll() is None:
                    _run(ssh.mux(path, "-O", "exit"))
                _stop(master)
            shutil.rmtree(folder, ignore_errors=True)
    return ended


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.stdin is not None:
        with suppress(OSError):
            process.stdin.close()
    try:
        process.wait(MUX_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.terminate()
        try:
            process.wait(MUX_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def _signals_end_it() -> Iterator[list[int]]:
    """SIGTERM and SIGHUP (the terminal closed) end the tunnel as Ctrl-C does (cli.run turns
    SIGINT into Interrupted): what was added is removed. The list holds the signal seen."""
    caught: list[int] = []

    def end(signum: int, frame: object) -> None:
        caught.append(signum)
        raise Interrupted

    previous = {}
    for signum in (signal.SIGINT, *posix.ending_signals()):
        previous[signum] = signal.signal(signum, end)
    try:
        yield caught
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextmanager
def _ignoring_interrupts() -> Iterator[None]:
    """While the forwards are removed: a second Ctrl-C must not leave one behind."""
    signals = (signal.SIGINT, *posix.ending_signals())
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in signals}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
