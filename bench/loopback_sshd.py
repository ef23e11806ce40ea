"""A throwaway OpenSSH server on 127.0.0.1 for the data-path benchmark.

Modelled on tests/sshd.py (which is a pytest plugin): fresh host keys and a passphrase-less
client key made by ssh-keygen in a temporary folder, public-key login of the current user only,
``StrictModes no`` (the key files live in a temporary folder), ``UsePAM no``, and the privilege
separation folder ``/run/sshd`` when running as root. Standard library only.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
PRIVSEP_DIR = Path("/run/sshd")

_SSHD_CONFIG = """\
# Written by bench/loopback_sshd.py for one benchmark run: loopback only, public key only.
ListenAddress {host}
Port {port}
HostKey {host_key}
PidFile {pid_file}
AuthorizedKeysFile {authorized_keys}
AllowUsers {user}
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
HostbasedAuthentication no
UsePAM no
PermitRootLogin prohibit-password
PermitUserRC no
PermitUserEnvironment no
AuthorizedKeysCommand none
AuthorizedPrincipalsFile none
Subsystem sftp internal-sftp
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
LoginGraceTime 20
MaxStartups 50
LogLevel INFO
"""


class SSHDError(RuntimeError):
    pass


def program(name: str) -> str:
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


def keygen(path: Path, comment: str) -> Path:
    subprocess.run(
        [program("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True, capture_output=True, timeout=30,
    )
    return path


@dataclass
class Server:
    host: str
    port: int
    user: str
    client_key: Path
    root: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)


def _accepts_ssh(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1) as sock:
            sock.settimeout(1)
            return sock.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def start(root: Path, attempts: int = 3) -> Server:
    """An sshd with fresh host keys, its files in ``root`` (created)."""
    sshd = program("sshd")  # absolute: sshd re-executes itself and insists on it
    root.mkdir(parents=True, exist_ok=True)
    user = current_user()
    host_key = keygen(root / "ssh_host_ed25519_key", "bench sshd host key")
    client_key = keygen(root / "client_ed25519", "bench client key")
    authorized = root / "authorized_keys"
    authorized.write_text(Path(f"{client_key}.pub").read_text())
    if os.geteuid() == 0 and not PRIVSEP_DIR.is_dir():
        PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    for attempt in range(attempts):
        port = free_port()
        config = root / "sshd_config"
        config.write_text(_SSHD_CONFIG.format(
            host=HOST, port=port, host_key=host_key, pid_file=root / "sshd.pid",
            authorized_keys=authorized, user=user,
        ))
        check = subprocess.run([sshd, "-t", "-f", str(config)], capture_output=True, text=True,
                               timeout=30)
        if check.returncode != 0:
            raise SSHDError(f"sshd -t rejected the config: {check.stderr.strip()}")
        log_path = root / f"sshd-{attempt}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)],
                                       stdin=subprocess.DEVNULL, stdout=log,
                                       stderr=subprocess.STDOUT)
        server = Server(HOST, port, user, client_key, root, process, log_path)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and process.poll() is None:
            if _accepts_ssh(port):
                return server
            time.sleep(0.05)
        server.stop()
        text = log_path.read_text(errors="replace")
        if "Address already in use" in text and attempt + 1 < attempts:
            continue
        raise SSHDError(f"sshd did not accept connections on {HOST}:{port}; its log:\n{text}")
    raise SSHDError("unreachable")
