"""`forward JOB SPEC...`: port forwards to a job, end to end with the real ssh and the test sshd.

The sshd is local, so "localhost on the cluster" is this machine: a small HTTP server on a
loopback port plays Jupyter; urllib reaches it through the local port. Ctrl-C is SIGINT to the
command's process group, as a terminal sends it. With a master: the test's own config passes
ControlMaster/ControlPath/ControlPersist (a short folder: socket paths are ~104 bytes at most),
and every master started is ended with `ssh -O exit`.
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from rescale_ssh.errors import UsageError
from rescale_ssh.sshconfig import forwards, hostblock, section
from rescale_ssh.target import Target
from tests.fakeplatform import FakePlatform
from tests.helpers import Cli, require, ssh_config_of
from tests.sshd import SSHServer

TIMEOUT = 30.0


class Served:
    """An HTTP server "on the cluster": GET / answers with its name."""

    def __init__(self, address: str = "127.0.0.1", name: str = "jupyter") -> None:
        body = name.encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # http.server's name
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer((address, 0), Handler)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def served() -> Iterator[Served]:
    server = Served()
    try:
        yield server
    finally:
        server.close()


def fetch(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as answer:
        return str(answer.read().decode())


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def add_job(cli: Cli, sshd: SSHServer, job: str) -> None:
    cli("add", job, "--from-log", sshd.log_line(job),
        env={"RESCALE_SSH_IDENTITY": str(sshd.client_key)})


def with_master(config: Path, persist: str = "60") -> str:
    """Control options for every rescale- alias, below the section (the test's config)."""
    folder = tempfile.mkdtemp(dir="/tmp")
    with config.open("a") as file:
        file.write(f"Host rescale-*\n    ControlMaster auto\n    ControlPath {folder}/%n\n"
                   f"    ControlPersist {persist}\n    BatchMode yes\n")
    return folder


def ssh(config: Path, *words: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require("ssh"), "-F", str(config), "-o", "BatchMode=yes", *words],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout)


class Running:
    """`rescale-ssh forward ...` in its own process group, as a terminal runs it."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "rescale_ssh", "forward", *args],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, start_new_session=True)

    def lines(self, count: int) -> list[str]:
        """The first ``count`` lines of stdout (the forwards, once they listen)."""
        assert self.proc.stdout is not None
        found: list[str] = []
        timer = threading.Timer(TIMEOUT, self.proc.kill)
        timer.start()
        try:
            while len(found) < count:
                line = self.proc.stdout.readline()
                assert line, f"forward ended early: {self.proc.wait()} {self.stderr()}"
                found.append(line.rstrip("\n"))
        finally:
            timer.cancel()
        return found

    def stderr(self) -> str:
        assert self.proc.stderr is not None
        return self.proc.stderr.read()

    def ctrl_c(self) -> tuple[int, str]:
        os.killpg(self.proc.pid, signal.SIGINT)
        code = self.proc.wait(TIMEOUT)
        return code, self.stderr()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(TIMEOUT)


def local_port(line: str) -> int:
    url = line.split()[0]
    assert url.startswith("http://localhost:"), line
    return int(url.rsplit(":", 1)[1])


# --- one-off forwards ------------------------------------------------------------------------


def opened_and_closed(args: list[str], served: Served) -> tuple[int, str]:
    running = Running(*args)
    try:
        [line] = running.lines(1)
        port = local_port(line)
        assert line.endswith(f"rescale-{args[0]}:{served.port}") and "  →  " in line
        assert fetch(port) == "jupyter"
        code, err = running.ctrl_c()
    finally:
        running.stop()
    assert code == 130, err
    assert "Traceback" not in err and "closed the forwards" in err, err
    assert refused(port)  # nothing stays listening
    return port, err


@pytest.mark.e2e
def test_forward_reaches_a_server_on_the_cluster_and_ctrl_c_ends_it(
        cli: Cli, sshd: SSHServer, served: Served) -> None:
    add_job(cli, sshd, "Fwd1")
    wanted = free_port()
    port, err = opened_and_closed(["Fwd1", f"{served.port}:{wanted}"], served)
    assert port == wanted and "a connection to rescale-Fwd1" in err
    # No local port given: the remote one is taken here (by the server itself), the next one.
    port, _ = opened_and_closed(["Fwd1", str(served.port)], served)
    assert port != served.port


@pytest.mark.e2e
def test_forward_reuses_a_running_master_and_leaves_nothing_in_it(
        cli: Cli, sshd: SSHServer, served: Served, ssh_config: Path) -> None:
    add_job(cli, sshd, "Fwd2")
    with_master(ssh_config, persist="2")
    assert ssh(ssh_config, "rescale-Fwd2", "true").returncode == 0  # the master starts
    try:
        running = Running("Fwd2", str(served.port))
        try:
            [line] = running.lines(1)
            port = local_port(line)
            # A master whose only users are forwards expires after ControlPersist (2 s):
            # `forward` holds it open meanwhile.
            threading.Event().wait(4)
            assert fetch(port) == "jupyter"
            assert ssh(ssh_config, "rescale-Fwd2", "echo", "second").stdout == "second\n"
            code, err = running.ctrl_c()
        finally:
            running.stop()
        assert code == 130 and "the running ssh master of rescale-Fwd2" in err, err
        assert ssh(ssh_config, "-O", "check", "rescale-Fwd2").returncode == 0  # master lives on
        assert refused(port)  # without our forward
    finally:
        ssh(ssh_config, "-O", "exit", "rescale-Fwd2")


@pytest.mark.e2e
def test_forward_starts_the_shared_master_when_the_config_wants_one(
        cli: Cli, sshd: SSHServer, served: Served, ssh_config: Path) -> None:
    add_job(cli, sshd, "Fwd3")
    with_master(ssh_config)
    try:
        _, err = opened_and_closed(["Fwd3", str(served.port)], served)
        assert "the running ssh master of rescale-Fwd3" in err
        assert ssh(ssh_config, "-O", "check", "rescale-Fwd3").returncode == 0
    finally:
        ssh(ssh_config, "-O", "exit", "rescale-Fwd3")


@pytest.mark.e2e
def test_a_worker_port_is_reached_through_the_head(
        cli: Cli, sshd: SSHServer, platform: FakePlatform) -> None:
    worker = Served("127.0.0.2", name="tensorboard")  # the worker's private address
    try:
        job = platform.add_job("Fwd4", user=sshd.user, host=sshd.host, port=sshd.port,
                               workdir=str(sshd.new_workdir("Fwd4")), workers=1)
        nodes = job.current_instances()
        nodes[1]["privateIp"] = "127.0.0.2"
        job.instances = nodes
        cli("add", "Fwd4", env={"RESCALE_SSH_IDENTITY": str(sshd.client_key)})
        running = Running("Fwd4", f"w1:{worker.port}")
        try:
            [line] = running.lines(1)
            assert line.endswith(f"rescale-Fwd4-1:{worker.port}"), line
            assert fetch(local_port(line)) == "tensorboard"
            code, _ = running.ctrl_c()
        finally:
            running.stop()
        assert code == 130
    finally:
        worker.close()


def test_an_explicit_local_port_in_use_is_refused(cli: Cli) -> None:
    cli("add", "Fwd5", "--from-log", "Command: ssh uprod_Fwd5@192.0.2.1")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        result = cli("forward", "Fwd5", f"8888:{taken}", expect=2)
    assert f"local port {taken} is in use" in result.stderr and "hint: " in result.stderr


# --- saved forwards --------------------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.parametrize("master", [False, True], ids=["plain", "master"])
def test_a_saved_forward_is_in_the_block_and_works_through_plain_ssh(
        cli: Cli, sshd: SSHServer, served: Served, ssh_config: Path, master: bool) -> None:
    add_job(cli, sshd, "Sav1")
    local = free_port()
    saved = cli("forward", "Sav1", f"{served.port}:{local}", "--save")
    assert saved.stdout == f"Saved http://localhost:{local}  →  rescale-Sav1:{served.port}\n"
    if master:
        with_master(ssh_config)
    options = ssh_config_of(str(ssh_config), "rescale-Sav1")
    assert options["localforward"] == [f"[127.0.0.1]:{local} [localhost]:{served.port}"]
    holder = subprocess.Popen([require("ssh"), "-F", str(ssh_config), "-o", "BatchMode=yes",
                               "-N", "rescale-Sav1"], stdin=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    try:
        for _ in range(200):
            if not refused(local):
                break
            threading.Event().wait(0.05)
        assert fetch(local) == "jupyter"
        # A second session while the first holds the port: ssh warns (no master) or hands it
        # to the master, and goes on.
        second = ssh(ssh_config, "rescale-Sav1", "echo", "ok")
        assert second.returncode == 0 and second.stdout == "ok\n", second.stderr
    finally:
        if master:
            ssh(ssh_config, "-O", "exit", "rescale-Sav1")
        holder.terminate()
        holder.wait(TIMEOUT)
    # Kept when the block is written again; listed; removed.
    add_job(cli, sshd, "Sav1")
    assert hostblock.forward_line((local, "localhost", served.port)).strip() in \
        ssh_config.read_text()
    listed = json.loads(cli("forward", "Sav1", "--json").stdout)
    assert listed == [{"local": local, "url": f"http://localhost:{local}", "host": "localhost",
                       "port": served.port, "to": f"rescale-Sav1:{served.port}"}]
    cli("forward", "Sav1", "--remove", str(local))
    assert "LocalForward" not in ssh_config.read_text()
    assert "localforward" not in ssh_config_of(str(ssh_config), "rescale-Sav1")


def test_two_jobs_never_get_the_same_local_port(cli: Cli, ssh_config: Path) -> None:
    for job in ("JobA", "JobB"):
        cli("add", job, "--from-log", f"Command: ssh uprod_{job}@192.0.2.1")
    first = cli("forward", "JobA", "8888", "--save").stdout
    second = cli("forward", "JobB", "8888", "--save").stdout
    ports = {local_port(line.split(" ", 1)[1]) for line in (first, second)}
    assert len(ports) == 2, (first, second)
    again = cli("forward", "JobA", "8888", "--save").stdout  # already saved: the same port
    assert again.startswith("Already saved") and local_port(again.split(" ", 2)[2]) in ports
    taken = local_port(first.split(" ", 1)[1])
    refused_ = cli("forward", "JobB", f"6006:{taken}", "--save", expect=2)
    assert f"local port {taken} is already saved for rescale-JobA" in refused_.stderr
    assert "hint: " in refused_.stderr
    # The section reads back as written: nothing of ours taken for the user's.
    data = ssh_config.read_bytes()
    current = section.read(data, path=str(ssh_config))
    assert sorted(f for e in current.entries.values() for f in e.forwards)[0][0] in ports
    assert section.foreign_lines(section.locate(data, path="c")) == []


@pytest.mark.e2e
def test_sync_keeps_saved_forwards(cli: Cli, platform: FakePlatform, ssh_config: Path) -> None:
    platform.add_job("Syn1")
    cli("add", "Syn1")
    cli("forward", "Syn1", "8888:18888", "--save")
    platform.jobs["Syn1"].host = "203.0.113.9"  # a new cluster for the job
    cli("sync", "--yes")
    text = ssh_config.read_text()
    assert "HostName 203.0.113.9" in text
    assert "LocalForward 127.0.0.1:18888 localhost:8888" in text


@pytest.mark.parametrize("spec", ["abc", "0", "70000", "8888:", ":8888", "8888:1:2:3",
                                  "w0:80", "bad_host!:80", "[::1:80"])
def test_invalid_specs_are_refused_with_a_hint(cli: Cli, spec: str) -> None:
    cli("add", "Inv1", "--from-log", "Command: ssh uprod_Inv1@192.0.2.1")
    result = cli("forward", "Inv1", spec, expect=2)
    assert result.stderr.startswith(f"rescale-ssh: error: invalid forward {spec!r}"), result
    assert "\nhint: a forward is REMOTE_PORT[:LOCAL_PORT]" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_worker_the_job_does_not_have_is_refused(cli: Cli) -> None:
    cli("add", "Inv2", "--from-log", "Command: ssh uprod_Inv2@192.0.2.1")
    result = cli("forward", "Inv2", "w1:6006", "--save", expect=2)
    assert "rescale-Inv2 has no worker 1" in result.stderr


def test_parse() -> None:
    assert forwards.parse("8888") == forwards.Spec("8888", 8888)
    assert forwards.parse("8888:9999") == forwards.Spec("8888:9999", 8888, 9999)
    assert forwards.parse("w2:6006") == forwards.Spec("w2:6006", 6006, worker=2)
    assert forwards.parse("node-3:11111:22222") == \
        forwards.Spec("node-3:11111:22222", 11111, 22222, host="node-3")
    assert forwards.parse("[fd00::1]:80").host == "fd00::1"
    assert forwards.parse("localhost:80").host is None  # the head itself
    with pytest.raises(UsageError):
        forwards.parse("8888:abc")


def test_saved_forwards_follow_the_worker_to_a_new_cluster() -> None:
    old = Target("J", "u", "192.0.2.1", 22, "/w", (("10.0.0.5", 22, True),))
    new = Target("J", "u", "192.0.2.2", 22, "/w", (("10.0.0.9", 22, True),))
    entry = hostblock.HostEntry(target=old, identity=None, known_hosts="/k",
                                forwards=((7000, "10.0.0.5", 6006), (7001, "localhost", 80)))
    assert forwards.carried(entry, new) == ((7000, "10.0.0.9", 6006), (7001, "localhost", 80))
    line = hostblock.forward_line((7000, "fd00::1", 6006))
    assert line.strip() == "LocalForward 127.0.0.1:7000 [fd00::1]:6006"
    assert hostblock.parse_forward(line.split(None, 1)[1], source="t") == (7000, "fd00::1", 6006)
