"""``rescale-ssh proxy HOST PORT``: the ProxyCommand of hook-written blocks.

With ``ProxyUseFdpass yes`` ssh gives us a Unix socket as stdout: we connect to the cluster, pass
the connected socket back (SCM_RIGHTS) and exit, so no byte of the session passes through Python
(ssh_config(5), ProxyUseFdpass). Where that is impossible (stdout is a pipe; Windows) we relay.

With ``--state DIR --job JOB`` the cached address of the job wins over HOST/PORT (a block read
from an older include may be stale); a refused or timed-out connection refreshes the job once
(its cluster may have been replaced) before giving up, and a job that cannot be reached is
explained in one line. Standard library only, and not even the ``socket`` module: it imports
enum, selectors and more (~6 ms, on every connection); ``_socket``, the C module under it, has
everything used here.
"""

from __future__ import annotations

import _socket
import os
import stat
import sys
import time

from rescale_ssh.errors import ExitCode, RescaleSSHError, UsageError

CONNECT_TIMEOUT = 10.0
RETRY_EVERY = 2.0
USAGE = "usage: rescale-ssh proxy [--wait SECONDS] [--state DIR --job JOB] HOST PORT"


class Options:
    __slots__ = ("host", "job", "port", "state", "wait")

    def __init__(self) -> None:
        self.state: str | None = None
        self.job: str | None = None
        self.wait: float | None = None
        self.host = ""
        self.port = 0


def parse(argv: list[str]) -> Options:
    from rescale_ssh import validate

    opts = Options()
    rest: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg in ("--state", "--job", "--wait"):
            value = next(args, None)
            if value is None:
                raise UsageError(f"{arg} needs a value", USAGE)
            if arg == "--state":
                opts.state = value
            elif arg == "--job":
                opts.job = validate.job_id(value, source="the command line")
            else:
                try:
                    opts.wait = max(0.0, float(value))
                except ValueError:
                    raise UsageError(f"--wait takes seconds, not {value!r}", USAGE) from None
        else:
            rest.append(arg)
    if len(rest) != 2:
        raise UsageError("proxy takes HOST and PORT", USAGE)
    opts.host, opts.port = rest[0], validate.port(rest[1], source="the command line")
    if opts.job is not None and opts.state is None:
        raise UsageError("--job needs --state", USAGE)
    return opts


def main(argv: list[str]) -> int:
    try:
        opts = parse(argv)
        sock = connect_for(opts)
    except RescaleSSHError as error:
        explain(error.message, error.hint)
        return int(error.exit_code)
    if hand_over(sock):
        # ssh waits for its ProxyCommand to exit before it goes on: skip the interpreter's
        # shutdown (a few ms on every connection). Nothing is buffered on stdout by then.
        sys.stderr.flush()
        os._exit(0)
    return relay(sock)


def connect_for(opts: Options) -> _socket.socket:
    if opts.job is None or opts.state is None:
        return connect(opts.host, opts.port, wait=opts.wait or 0.0)
    from rescale_ssh.errors import InvalidValueError
    from rescale_ssh.hook import hookconf, jobcache
    from rescale_ssh.hook.jobcache import OK

    conf = hookconf.load(opts.state)  # a str: see store.py on pathlib
    wait = conf.wait if opts.wait is None else opts.wait
    started = time.time()
    try:  # the usual case: the record the hook just used (without importing the hook: ~1.5 ms)
        entry = jobcache.load(conf.state_dir, opts.job)
    except InvalidValueError:
        entry = None
    if entry is None or entry.state != OK:
        from rescale_ssh.hook import matcher

        entry = matcher.cached(conf, opts.job)  # a damaged record becomes an explained failure
        if entry is None:
            entry = matcher.ensure(conf, opts.job)
        elif entry.state != OK:
            matcher.publish(conf, opts.job, entry)  # the next ssh reads the failure block
    if entry.state != OK or entry.target is None:
        raise RescaleSSHError(entry.reason, entry.hint or None)
    target = entry.target
    try:
        return connect(target.host, target.port, wait=wait)
    except RescaleSSHError as first:
        # The cluster may have been replaced or stopped since the job was cached: ask again.
        from rescale_ssh.hook import matcher

        entry = matcher.refresh(conf, opts.job, previous=entry, newer_than=started)
        matcher.publish(conf, opts.job, entry)
        if entry.state != OK or entry.target is None:
            raise RescaleSSHError(entry.reason, entry.hint or None) from None
        if (entry.target.host, entry.target.port) == (target.host, target.port):
            raise RescaleSSHError(
                f"the cluster of job {opts.job} does not answer at "
                f"{target.host}:{target.port} ({first.message})",
                f"`rescale-ssh status {opts.job}` shows the job; `rescale-ssh doctor "
                f"{opts.job}` checks the access restriction (CIDR) and the key",
            ) from None
        return connect(entry.target.host, entry.target.port, wait=wait)


def connect(host: str, port: int, *, wait: float = 0.0) -> _socket.socket:
    """A connected TCP socket; with ``wait`` keep trying that long (a cluster still booting)."""
    deadline = time.monotonic() + wait
    announced = False
    while True:
        remaining = deadline - time.monotonic()
        try:
            return open_connection(host, port, CONNECT_TIMEOUT)
        except OSError as exc:
            problem = describe(exc)
            if remaining <= RETRY_EVERY:
                raise RescaleSSHError(f"cannot connect to {host} port {port}: {problem}",
                                      None) from None
        if not announced:
            print(f"rescale-ssh: waiting up to {wait:.0f} s for {host} port {port} "
                  f"to accept connections ({problem})", file=sys.stderr)
            announced = True
        time.sleep(RETRY_EVERY)


def open_connection(host: str, port: int, timeout: float) -> _socket.socket:
    """socket.create_connection, on ``_socket``: each address of ``host`` in turn."""
    # bytes: a str host would import the idna codec (~3 ms); hosts here are validated ASCII.
    infos = _socket.getaddrinfo(host.encode("ascii"), port, 0, _socket.SOCK_STREAM)
    error: OSError = OSError(f"no address for {host}")
    for family, kind, proto, _, address in infos:
        sock = _socket.socket(family, kind, proto)
        try:
            # ssh sets TCP_NODELAY only after the key exchange (and for interactive sessions):
            # until then Nagle's algorithm holds its small packets back behind the server's
            # delayed ACK, ~1.2 round trips of every connection on a WAN link (issue 16). The
            # option goes with the socket ssh receives (ProxyUseFdpass), and helps the relay.
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            sock.settimeout(timeout)
            sock.connect(address)
            sock.settimeout(None)
            return sock
        except OSError as exc:
            error = exc
            sock.close()
    raise error


def describe(exc: OSError) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, _socket.gaierror):
        return "host name not found"
    return exc.strerror or type(exc).__name__


def explain(message: str, hint: str | None) -> None:
    print(f"rescale-ssh: error: {message}", file=sys.stderr)
    if hint:
        print(f"hint: {hint}", file=sys.stderr)


def hand_over(sock: _socket.socket) -> bool:
    """Pass the socket to ssh through stdout when it is a Unix socket (ProxyUseFdpass);
    False when that is impossible and the caller must relay."""
    from rescale_ssh import posix

    sock.settimeout(None)
    if not (posix.can_pass_fds() and stat.S_ISSOCK(os.fstat(1).st_mode)):
        return False
    posix.send_fd(1, sock.fileno())
    sock.close()
    return True


def relay(sock: _socket.socket) -> int:
    """Copy stdin → socket and socket → stdout until both directions end."""
    import contextlib
    import threading

    def upstream() -> None:
        try:
            while data := os.read(0, 65536):
                sock.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sock.shutdown(_socket.SHUT_WR)

    thread = threading.Thread(target=upstream, daemon=True)
    thread.start()
    try:
        while data := sock.recv(65536):
            view = memoryview(data)
            while view:
                view = view[os.write(1, view):]
    except OSError:
        return int(ExitCode.UNAVAILABLE)
    finally:
        sock.close()
    return 0
