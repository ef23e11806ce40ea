"""A real OpenSSH server on 127.0.0.1 with throwaway keys: the tests' (through the pytest
plugin tests/sshd.py) and the data-path benchmark's (bench/run.py). Standard library only.

``start_sshd`` runs ``sshd -D -e`` with fresh host keys and a passphrase-less client key made by
``ssh-keygen`` in a temporary folder, public-key login of the current user only. It works as
root (CI; the server then also needs the privilege separation folder ``/run/sshd``) and as a
normal user (sshd then runs unprivileged and can only log in that same user).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
PRIVSEP_DIR = Path("/run/sshd")  # sshd(8) refuses to start as root without it (Debian's path)

_SSHD_CONFIG = """\
# Written by tests/loopback.py for one test or benchmark run: loopback only, public key only.
ListenAddress {host}
Port {port}
HostKey {host_key}
PidFile {pid_file}
AuthorizedKeysFile {authorized_keys}
AllowUsers {user}
# The key files live in a temporary folder whose modes sshd need not like.
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
HostbasedAuthentication no
# PAM needs root; an unprivileged sshd must not use it.
UsePAM no
PermitRootLogin prohibit-password
# Nothing from the real account's ~/.ssh may take part (rc scripts, environment files).
PermitUserRC no
PermitUserEnvironment no
AuthorizedKeysCommand none
AuthorizedPrincipalsFile none
# scp in OpenSSH >= 9.0 speaks SFTP.
Subsystem sftp internal-sftp
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
LoginGraceTime 20
MaxStartups 50
LogLevel VERBOSE
"""



class SSHDError(RuntimeError):
    pass


def program(name: str) -> str:
    """The program's absolute path (``/usr/sbin`` is often not on a user's PATH)."""
    found = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.path.exists(p)), None
    )
    if found is None:
        raise SSHDError(f"{name} is not installed")
    return found


def current_user() -> str:
    return pwd.getpwuid(os.getuid()).pw_name


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _run(command: list[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise SSHDError(
            f"$ {' '.join(command)}\nexit {proc.returncode}\n"
            f"--- stdout\n{proc.stdout}--- stderr\n{proc.stderr}"
        )
    return proc


def keygen(path: Path, comment: str, *, find: Callable[[str], str] = program) -> Path:
    """An ed25519 key pair without passphrase at ``path`` / ``path.pub``."""
    _run([find("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])
    return path


@dataclass
class SSHServer:
    """One running sshd. ``workdir`` plays ``/enc/<user>/work`` on the cluster."""

    host: str
    port: int
    user: str
    client_key: Path
    host_key: Path
    workdir: Path
    root: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    _made: set[str] = field(default_factory=set)

    @property
    def host_public_key(self) -> str:
        """``<type> <base64>`` of the server's host key, as known_hosts records it."""
        kind, blob, *_ = Path(f"{self.host_key}.pub").read_text().split()
        return f"{kind} {blob}"

    def new_workdir(self, name: str) -> Path:
        """A fresh, empty working directory (tests share the session's server)."""
        base = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:60] or "work"
        candidate, n = base, 0
        while candidate in self._made or (self.root / "enc" / candidate).exists():
            n += 1
            candidate = f"{base}-{n}"
        self._made.add(candidate)
        path = self.root / "enc" / candidate
        path.mkdir(parents=True)
        return path

    def log_line(self, job: str, workdir: Path | str | None = None) -> str:
        """The line Rescale's Job Logs show once the cluster accepts SSH (``job`` is not in it:
        the real line does not name the job either)."""
        del job
        where = self.workdir if workdir is None else workdir
        return (
            "Instance ready for ssh access. Command: ssh -i </path/to/key> "
            f"-p {self.port} {self.user}@{self.host}; working directory: {where}"
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)


def _accepts_ssh(host: str, port: int) -> bool:
    """True once something on host:port sends an SSH banner (a bound port is not enough)."""
    try:
        with socket.create_connection((host, port), timeout=1) as sock:
            sock.settimeout(1)
            return sock.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def start_sshd(root: Path, *, client_key: Path | None = None, port: int | None = None,
               attempts: int = 3, find: Callable[[str], str] | None = None,
               host: str = HOST) -> SSHServer:
    """Start an sshd with fresh host keys in ``root`` (created). ``client_key`` is authorized
    (a new one is made when None). ``port`` defaults to a free one. ``find`` locates programs
    (default :func:`program`). ``host``: the address it listens on (the WAN benchmark's
    network namespace has its own). Raises SSHDError."""
    find = find or program
    sshd = find("sshd")  # an absolute path: sshd re-executes itself and insists on one
    root.mkdir(parents=True, exist_ok=True)
    user = current_user()
    host_key = keygen(root / "ssh_host_ed25519_key", "loopback sshd host key", find=find)
    if client_key is None:
        client_key = keygen(root / "client_ed25519", "loopback client key", find=find)
    authorized = root / "authorized_keys"
    authorized.write_text(Path(f"{client_key}.pub").read_text())
    workdir = root / "enc" / user / "work"
    workdir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0 and not PRIVSEP_DIR.is_dir():
        PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)

    for attempt in range(attempts):
        chosen = port if port is not None else free_port()
        config = root / "sshd_config"
        config.write_text(_SSHD_CONFIG.format(
            host=host, port=chosen, host_key=host_key, pid_file=root / "sshd.pid",
            authorized_keys=authorized, user=user,
        ))
        _run([sshd, "-t", "-f", str(config)])  # a config error is reported plainly
        log_path = root / f"sshd-{attempt}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [sshd, "-D", "-e", "-f", str(config)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )
        server = SSHServer(host=host, port=chosen, user=user, client_key=client_key,
                           host_key=host_key, workdir=workdir, root=root, process=process,
                           log_path=log_path)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and process.poll() is None:
            if _accepts_ssh(host, chosen):
                return server
            time.sleep(0.05)
        server.stop()
        log_text = server.log()
        # Another process took the free port between our probe and sshd's bind: try another.
        if port is None and "Address already in use" in log_text and attempt + 1 < attempts:
            continue
        raise SSHDError(f"sshd did not accept connections on {host}:{chosen} within "
                        f"{START_TIMEOUT:.0f} s (exit {process.returncode}); its log:\n{log_text}")
    raise SSHDError("unreachable")
