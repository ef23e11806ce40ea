"""The link of item 8 (``wan``): a network namespace with netem (bench/netns.py), the same joined
by a tun forwarder (bench/tunlink.py), or relays on loopback (bench/relay.py), each in front of
the throwaway sshd and the fake platform."""

from __future__ import annotations

import contextlib
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tests import loopback

from bench import netns, tunlink
from bench.context import Ctx
from bench.errors import BenchError
from bench.scenario import BENCH


@dataclass
class RelayProcess:
    """bench/relay.py in a process of its own: its timing is not the benchmark's GIL's."""

    process: subprocess.Popen[str]
    port: int

    @classmethod
    def start(cls, python: str, target: int, delay_ms: float, rate_mbit: float) -> RelayProcess:
        argv = [python, str(BENCH / "relay.py"), "--target", str(target),
                "--delay-ms", f"{delay_ms:g}", "--rate-mbit", f"{rate_mbit:g}"]
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   text=True)
        line = process.stdout.readline() if process.stdout else ""
        if not line.strip().isdigit():
            process.kill()
            raise BenchError(f"$ {shlex.join(argv)} did not say its port (said {line!r})")
        return cls(process, int(line))

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


@dataclass
class Endpoint:
    """What Sandbox needs of a platform: its URL (the relay's HTTPS port) and the API key."""

    base_url: str
    api_key: str



@contextlib.contextmanager
def link(ctx: Ctx, server: loopback.SSHServer, platform: Any, rtt_ms: float,
         rate_mbit: float, net: netns.Namespace | None) -> Iterator[tuple[int, int]]:
    """The ports the clients dial on ``server.host`` for the sshd and the platform: the
    servers' own through the namespace's veth, shaped for this RTT, or two relays'."""
    api_port = int(platform._server.server_address[1])
    if net is not None:
        try:
            net.shape(rtt_ms / 2, rate_mbit)
        except netns.NetnsError as exc:
            raise BenchError(str(exc)) from exc
        yield server.port, api_port
        return
    ssh_relay = RelayProcess.start(ctx.python, server.port, rtt_ms / 2, rate_mbit)
    try:
        api_relay = RelayProcess.start(ctx.python, api_port, rtt_ms / 2, rate_mbit)
        try:
            yield ssh_relay.port, api_relay.port
        finally:
            api_relay.stop()
    finally:
        ssh_relay.stop()


def network(stack: contextlib.ExitStack, mode: str) -> tuple[netns.Namespace | None, str]:
    """The namespace for ``mode`` ("netns", "tun", "relay", "auto": netem, else the tun
    forwarder, else the relay), entered on ``stack``; None for the relay. The text says why
    the links before the one chosen were not used ("" when asked for by name)."""
    if mode == "relay":
        return None, ""
    unused: list[str] = []
    for name, kind in (("netns", None), ("tun", tunlink.TunNamespace)):
        if mode not in ("auto", name):
            continue
        try:
            return stack.enter_context(netns.namespace(kind=kind)), "; ".join(unused)
        except netns.NetnsError as exc:
            if mode == name:
                raise BenchError(f"--{name}: {exc}") from exc
            unused.append(f"`--{name}` not used: " + " ".join(str(exc).split()))
    return None, "; ".join(unused)
