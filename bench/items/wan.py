"""Item 8, ``wan``: connection times and three user workloads over an emulated
WAN link (issue 16, item 3). bench/README.md describes the rows.

The link is one of three. As root, when the kernel has netem (``--netns``, the default then):
the throwaway sshd (tests/loopback.py) and the fake platform (tests/fakeplatform.py), served over
HTTPS with a throwaway CA, listen in a network namespace (bench/netns.py) whose veth pair has
``tc netem`` on both ends, the clients on the host. As root without netem (``--tun``): the same
namespace joined by two tun devices and a forwarder process that delays every packet
(bench/tunlink.py). Otherwise (``--relay``, or no namespace): each server sits behind a relay
on loopback (bench/relay.py: a delay per direction, a rate, the TCP handshake's round trip).
The job's ready line names the address and port the clients dial.

Per RTT, every round runs each subject once, in a shuffled order: direct ssh (unmultiplexed and
multiplexed), the static alias (``add --from-log``), the hook's alias (``install``; warm, cold)
unmultiplexed and as the tool writes it, and the workloads through each route.
"""

from __future__ import annotations

import contextlib
import functools
import random
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests import loopback
from tests.tls import Counter, make_tls, serve_tls

from bench import netns, tunlink
from bench.context import Ctx
from bench.report import ItemResult, Row, fmt_ratio, fmt_time, verdict
from bench.sandbox import Sandbox, fake_platform, short_root, write_payload
from bench.scenario import MB
from bench.stats import bootstrap_median, summary
from bench.wanlink import Endpoint, link, network
from bench.workloads import (
    NO_MUX,
    SCP_BYTES,
    SMALL_FILE_BYTES,
    SMALL_FILES,
    Payloads,
    Route,
    Subject,
    bulk_rsync,
    check,
    connect,
    short_dir,
    user_sequence,
    vscode_start,
)

DEFAULT_RTTS = (80.0, 150.0)


def measure_rtt(ctx: Ctx, server: loopback.SSHServer, platform: Any, tls: Counter,
                rtt_ms: float, rate_mbit: float, ca: Path, data: Payloads,
                rounds: int, passes: int, net: netns.Namespace | None) -> dict[str, Any]:
    job = f"Wan{rtt_ms:g}".replace(".", "x")
    alias = f"rescale-{job}"
    with link(ctx, server, platform, rtt_ms, rate_mbit, net) as (ssh_port, api_port):
        platform.add_job(job, user=server.user, host=server.host, port=ssh_port,
                         workdir=str(data.remote))
        endpoint = Endpoint(f"https://{server.host}:{api_port}", platform.api_key)
        # HOME under a short folder: the tool's ControlPath (<state>/mux/%n) must fit in a Unix
        # socket's path (~104 bytes, with the 17 characters ssh adds while it makes one), or
        # ssh disables multiplexing; in the run's folder it did not fit at 150 ms.
        short = short_root(ctx)
        boxes = {name: Sandbox(ctx, f"{name[0]}{rtt_ms:g}", platform=endpoint, base=short,
                               identity=server.client_key) for name in ("static", "hook", "cold")}
        for box in boxes.values():
            box.env.update(REQUESTS_CA_BUNDLE=str(ca), NO_PROXY=server.host, no_proxy=server.host)
        boxes["static"].config.write_text("# nothing of my own\n")
        boxes["static"].cli("add", job, "--from-log", platform.jobs[job].ready_line())
        boxes["hook"].install("# nothing of my own\n")
        boxes["cold"].install("# nothing of my own\n")
        mux_dir = short_dir(ctx, "rsbm")
        direct_config = boxes["hook"].dir / "direct_config"
        direct_config.write_text(
            f"IdentityFile {server.client_key}\nIdentitiesOnly yes\n"
            f"UserKnownHostsFile {boxes['hook'].dir / 'direct_known_hosts'}\n"
            "GlobalKnownHostsFile /dev/null\nStrictHostKeyChecking accept-new\nBatchMode yes\n")
        ssh, scp = ctx.ssh, shutil.which("scp") or "scp"
        direct_host = f"{server.user}@{server.host}"
        routes = {
            "direct": Route("direct", ssh, scp, direct_config, direct_host, boxes["hook"].env,
                            NO_MUX, ssh_port),
            "direct_mux": Route("direct_mux", ssh, scp, direct_config, direct_host,
                                boxes["hook"].env,
                                ["-o", "ControlMaster=auto", "-o", f"ControlPath={mux_dir}/%C",
                                 "-o", "ControlPersist=60"], ssh_port),
            "static": Route("static", ssh, scp, boxes["static"].config, alias,
                            boxes["static"].env, ["-o", "BatchMode=yes"]),
            "static_nomux": Route("static_nomux", ssh, scp, boxes["static"].config, alias,
                                  boxes["static"].env, ["-o", "BatchMode=yes", *NO_MUX]),
            "alias": Route("alias", ssh, scp, boxes["hook"].config, alias, boxes["hook"].env,
                           ["-o", "BatchMode=yes"]),
            "alias_nomux": Route("alias_nomux", ssh, scp, boxes["hook"].config, alias,
                                 boxes["hook"].env, ["-o", "BatchMode=yes", *NO_MUX]),
            "cold": Route("cold", ssh, scp, boxes["cold"].config, alias, boxes["cold"].env,
                          ["-o", "BatchMode=yes"]),
        }
        for route in routes.values():  # host keys accepted, the hooks' records warm
            check(route.ssh_argv(route.host, "true"), route.env)
        tool_muxes = routes["alias"].multiplexed()

        def later(route: Route) -> Callable[[], object]:
            """A later connection: a master is up when the route has one."""
            def prepare() -> None:
                if route.multiplexed() and not route.has_master():
                    check(route.ssh_argv(route.host, "true"), route.env)
            return prepare

        def first(route: Route, *, hook_runs: bool = False,
                  cold: bool = False) -> Callable[[], object]:
            box = boxes["cold" if cold else "hook"]

            def prepare() -> None:
                route.exit_master()
                if cold:
                    box.clear_cache()
                elif hook_runs:
                    shutil.rmtree(box.state / "live", ignore_errors=True)
            return prepare

        requests: list[int] = []
        handshakes: list[int] = []

        def cold_connect() -> float:
            before, tls_before = platform.count(), tls.value
            elapsed = connect(routes["cold"])
            requests.append(platform.count() - before)
            handshakes.append(tls.value - tls_before)
            return elapsed

        conn = {
            "direct": Subject(lambda: connect(routes["direct"])),
            "direct_mux": Subject(lambda: connect(routes["direct_mux"]),
                                  later(routes["direct_mux"])),
            "static_first": Subject(lambda: connect(routes["static"]), first(routes["static"])),
            "static_later": Subject(lambda: connect(routes["static_nomux"])),
            "hook_warm": Subject(lambda: connect(routes["alias"]),
                                 first(routes["alias"], hook_runs=True)),
            "hook_cold": Subject(cold_connect, first(routes["cold"], cold=True)),
            "alias_later": Subject(lambda: connect(routes["alias_nomux"])),
            "alias_later_tool": Subject(lambda: connect(routes["alias"]), later(routes["alias"])),
        }
        work: dict[str, Subject] = {}
        for kind, function in (("sequence", user_sequence), ("vscode", vscode_start)):
            for name in ("direct", "alias_nomux", "alias"):
                route = routes[name]
                work[f"{kind}:{name}"] = Subject(functools.partial(function, route, data),
                                                 route.exit_master)  # starts without a master
        for name in ("direct", "alias"):
            work[f"bulk:{name}"] = Subject(functools.partial(bulk_rsync, routes[name], data),
                                           later(routes[name]))
        subjects = {**conn, **work}
        rng = random.Random(int(rtt_ms))
        for round_no in range(rounds):
            # Connections are cheap: twice a round in a quick run (a full one has more rounds).
            order = [*subjects, *(conn if passes > 1 else ())]
            rng.shuffle(order)
            print(f"  wan {rtt_ms:g} ms: round {round_no + 1} of {rounds}", file=sys.stderr,
                  flush=True)
            for name in order:
                subject = subjects[name]
                if subject.prepare is not None:
                    subject.prepare()
                subject.times.append(subject.measure())
        for route in routes.values():
            route.exit_master()
    return {"times": {name: s.times for name, s in subjects.items()},
            "link": (net.shaped if net is not None else "relay") + (
                f"; forwarder: {net.take_counts()}" if isinstance(net, tunlink.TunNamespace)
                else ""),
            "cold_requests": requests, "cold_tls_connections": handshakes,
            "tool_multiplexes": tool_muxes, "rounds": rounds}


def fmt_rtts(values: list[float], rtt: float) -> str:
    s = summary(values)
    return f"{s['median'] / rtt:.1f} RTT [{s['p10'] / rtt:.1f}–{s['p90'] / rtt:.1f}]"


def report(result: ItemResult, rtt_ms: float, size: int, found: dict[str, Any]) -> None:
    times: dict[str, list[float]] = found["times"]
    rtt = rtt_ms / 1000
    tag = f"8 ({rtt_ms:g} ms)"

    def med(name: str) -> float:
        return statistics.median(times[name])

    def timing(name: str) -> str:
        return f"{fmt_time(times[name])} = {fmt_rtts(times[name], rtt)}"

    direct = f"direct {fmt_time(times['direct'])}"
    labels = {
        "direct": "`ssh -p PORT user@ADDRESS true` (direct, unmultiplexed)",
        "direct_mux": "direct, multiplexed, later connection (master up)",
        "static_first": "static alias (`add --from-log`), first connection",
        "static_later": "static alias, later connection, unmultiplexed",
        "hook_warm": "hook alias, record fresh, first connection (the hook runs)",
        "hook_cold": "hook alias, cache cleared: first connection (cold)",
        "alias_later": "hook alias, later connection, unmultiplexed",
        "alias_later_tool": "hook alias, later connection, as the tool writes it",
    }
    for name, label in labels.items():
        base = "–" if name == "direct" else direct
        shown = "–" if name == "direct" else fmt_ratio(med(name) / med("direct"))
        budget, ok = "–", "info"
        if name in ("hook_cold", "hook_warm"):
            extra = (med(name) - med("direct")) / rtt
            budget, ok = "≤ direct + 2 RTT", verdict(extra <= 2)
            shown = f"{shown}, {extra:+.1f} RTT"
        elif name in ("static_later", "alias_later"):
            budget, ok = "≤ 0.92×", verdict(med(name) / med("direct") <= 0.92)
        elif name == "alias_later_tool":
            base = f"direct multiplexed {fmt_time(times['direct_mux'])}"
            shown = fmt_ratio(med(name) / med("direct_mux"))
            budget, ok = "≤ 1.15×", verdict(med(name) / med("direct_mux") <= 1.15)
        result.rows.append(Row(tag, label, timing(name), base, shown, budget, ok))

    for kind, label, most in (("sequence", "user sequence (`ssh true`; rsync 200 files up and "
                               "back; scp 5 MB; `ssh ls`)", 0.6),
                              ("vscode", "VS Code-like start (`ssh -T -D PORT HOST bash`, then "
                               "4 `ssh HOST cmd`)", 0.4)):
        base_t = times[f"{kind}:direct"]
        for name, route in (("alias_nomux", "alias unmultiplexed"),
                            ("alias", "alias as the tool writes it")):
            value = times[f"{kind}:{name}"]
            r = statistics.median(value) / statistics.median(base_t)
            judged = name == "alias"
            result.rows.append(Row(
                tag, f"{label}: {route}", timing(f"{kind}:{name}"),
                f"direct unmultiplexed {fmt_time(base_t)} = {fmt_rtts(base_t, rtt)}",
                fmt_ratio(r), f"≤ {most}×" if judged else "–",
                verdict(r <= most) if judged else "info"))

    alias_bulk, direct_bulk = times["bulk:alias"], times["bulk:direct"]
    paired = [d / a for a, d in zip(alias_bulk, direct_bulk, strict=True)]
    r = statistics.median(paired)
    low, high = bootstrap_median(paired) if len(paired) > 1 else (r, r)

    def mbs(values: list[float]) -> str:
        s = summary([size / t / MB for t in values])
        return f"{s['median']:.1f} MB/s [{s['p10']:.1f}–{s['p90']:.1f}]"

    result.rows.append(Row(
        tag, f"rsync {size / MB:g} MB through the alias (as the tool writes it): throughput",
        mbs(alias_bulk), f"direct unmultiplexed {mbs(direct_bulk)}",
        f"{fmt_ratio(r)} (95 % CI {low:.2f}–{high:.2f})", "≥ 0.97×",
        "ok" if r >= 0.97 else ("**MISS**" if high < 0.97 else "inconclusive (noise)")))
    # The data path alone: the wall time less the route's own median connection (a later one).
    setup = {"alias": med("alias_later_tool"), "direct": med("direct")}
    data_only = {name: [size / (t - setup[name]) / MB for t in times[f"bulk:{name}"]]
                 for name in setup}
    result.rows.append(Row(
        tag, "the same, connection set-up excluded: size / (wall − the route's median "
        "`ssh HOST true`)", f"{statistics.median(data_only['alias']):.1f} MB/s",
        f"direct {statistics.median(data_only['direct']):.1f} MB/s",
        fmt_ratio(statistics.median(data_only["alias"]) / statistics.median(data_only["direct"]))))
    counts = found["cold_requests"]
    result.rows.append(Row(tag, "API requests of the cold hook's first connection",
                           f"{max(counts)}" + (f" (runs: {sorted(set(counts))})"
                                               if len(set(counts)) > 1 else ""),
                           f"TLS connections: {max(found['cold_tls_connections'])}",
                           budget="≤ 2", verdict=verdict(max(counts) <= 2)))


def bench_wan(ctx: Ctx) -> ItemResult:
    result = ItemResult("wan", "WAN: connection times and workloads over an emulated link")
    args = ctx.args
    rtts = [float(value) for value in args.rtt] or (list(DEFAULT_RTTS[:1]) if ctx.quick
                                                    else list(DEFAULT_RTTS))
    rate = float(args.rate)
    rounds = ctx.reps(3, 2)
    size = (10 if ctx.quick else 30) * MB
    found: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:  # the namespace (if any) goes last
        net, unused = network(stack, getattr(args, "link", "auto"))
        host = net.address if net is not None else loopback.HOST
        # The servers' sockets in the namespace; the clients (this thread after) on the host.
        inside = net.entered if net is not None else contextlib.nullcontext
        ca, cert, key = make_tls(ctx.root / "wan-tls", host)
        with inside():
            server = loopback.start_sshd(ctx.root / "wan-sshd", host=host)
        stack.callback(server.stop)
        base = ctx.fast_root / "wan"
        data = Payloads(small=base / "small", big=base / "big.bin", bulk=base / "bulk.bin",
                        remote=base / "remote", local=base / "local")
        for folder in (data.small, data.remote, data.local):
            folder.mkdir(parents=True)
        for i in range(SMALL_FILES):
            (data.small / f"f{i:03d}.txt").write_bytes(random.randbytes(SMALL_FILE_BYTES))
        write_payload(data.big, SCP_BYTES)
        write_payload(data.bulk, size)
        with inside():
            platform = stack.enter_context(fake_platform(float(args.platform_ms) / 1000,
                                                             host=host))
        tls = serve_tls(platform, cert, key)
        for rtt_ms in rtts:
            started = time.monotonic()
            found[f"{rtt_ms:g}"] = measure_rtt(ctx, server, platform, tls, rtt_ms, rate,
                                               ca, data, rounds, 2 if ctx.quick else 1, net)
            found[f"{rtt_ms:g}"]["seconds"] = time.monotonic() - started
    for rtt_ms in rtts:
        report(result, rtt_ms, size, found[f"{rtt_ms:g}"])
    some = next(iter(found.values()))
    if isinstance(net, tunlink.TunNamespace):
        link_line = (
            f"Link: netns + tun forwarder: the sshd and the fake platform (HTTPS with a "
            f"throwaway CA, `REQUESTS_CA_BUNDLE`) listen in the network namespace `{net.name}` "
            f"on {net.address}, the clients on the host at {net.host_address}, joined by two "
            f"tun devices and bench/tunlink.py's forwarder process, which releases every "
            f"packet RTT/2 after it came, in order ("
            + "; ".join(f"{r:g} ms: {found[f'{r:g}']['link']}" for r in rtts)
            + "), the kernel's TCP on both ends (handshake, slow start, Nagle and delayed "
            "ACKs on ssh's own socket)" + (f" ({unused})" if unused else ""))
    elif net is not None:
        link_line = (
            f"Link: netns + netem: the sshd and the fake platform (HTTPS with a throwaway CA, "
            f"`REQUESTS_CA_BUNDLE`) listen in the network namespace `{net.name}` on "
            f"{net.address}, the clients on the host at {net.host_address}, through a veth pair "
            f"with `tc qdisc … root netem` on both ends (each direction: "
            + "; ".join(f"{r:g} ms: `{found[f'{r:g}']['link']}`" for r in rtts)
            + "), the kernel's TCP over it (handshake, slow start)")
    else:
        link_line = (
            "Link: relay: bench/relay.py in front of the sshd and of the fake platform (HTTPS "
            "with a throwaway CA, `REQUESTS_CA_BUNDLE`), one-way delay RTT/2 each direction, "
            f"{rate:g} Mbit/s each direction, the TCP handshake's round trip emulated"
            + (f" ({unused})" if unused else ""))
    result.notes.append(
        f"{link_line}; the platform "
        f"adds {float(args.platform_ms):g} ms to every answer. {rounds} rounds per RTT, every "
        f"subject once a round (a connection {'twice' if ctx.quick else 'once'}) in a shuffled "
        f"order (about "
        + ", ".join(f"{found[f'{r:g}']['seconds']:.0f} s at {r:g} ms" for r in rtts)
        + "). Times are medians [p10–p90] and the same in RTTs (time / RTT). \"First "
        "connection\": no master (`ssh -O exit` before); \"later\": a master is up when the "
        "route has one; \"unmultiplexed\": `-o ControlMaster=no -o ControlPath=none`. "
        "The workloads start without a master. The tool's alias "
        + ("is" if some["tool_multiplexes"] else "is **not**")
        + " multiplexed as the tool writes it (`ssh -G`)"
        + ("." if some["tool_multiplexes"] else ": its \"as the tool writes it\" rows are "
           "unmultiplexed too, and the budgets made for multiplexing miss.")
        + " API requests and TLS connections of the cold hook per run: "
        + "; ".join(f"{r:g} ms: {found[f'{r:g}']['cold_requests']}, "
                    f"{found[f'{r:g}']['cold_tls_connections']}" for r in rtts) + ".")
    kind = "tun" if isinstance(net, tunlink.TunNamespace) else "netns" if net else "relay"
    result.raw = {"link": kind, "netns_unused": unused,
                  "rtts_ms": rtts, "rate_mbit": rate, "bulk_bytes": size, "rounds": rounds,
                  "platform_ms": float(args.platform_ms), "per_rtt": found}
    return result
