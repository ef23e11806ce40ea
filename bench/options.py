"""The command line of ``python -m bench`` and ``python bench/run.py``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.items import ITEMS, ON_REQUEST
from bench.scenario import RESULTS_JSON, ROOT
from bench.tree import is_source

DESCRIPTION = "Benchmarks of rescale-ssh, each against a baseline measured in the same run."


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    # `python -m bench` would otherwise call itself __main__.py in its usage line.
    prog = "python -m bench" if Path(sys.argv[0]).name == "__main__.py" else None
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="items: " + ", ".join(ITEMS))
    parser.add_argument("--quick", action="store_true", help="fewer repeats, 50 MB data path")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="run only this item (repeatable, or comma-separated)")
    parser.add_argument("--latency", type=float, default=100.0, metavar="MS",
                        help="fake platform latency per request for cold resolution and sync "
                             "(default: 100)")
    parser.add_argument("--repeats", type=int, default=0, help="override every repeat count")
    parser.add_argument("--rtt", action="append", type=float, default=[], metavar="MS",
                        help="round trip time of the emulated link for the `wan` item "
                             "(repeatable; default: 80 and 150, --quick: 80)")
    parser.add_argument("--rate", type=float, default=100.0, metavar="MBIT",
                        help="rate of the emulated link, Mbit/s each direction (default: 100)")
    link = parser.add_mutually_exclusive_group()
    link.add_argument("--netns", dest="link", action="store_const", const="netns",
                      help="`wan`: a network namespace and tc netem (root; the default when "
                           "it works, else --tun, else the relay)")
    link.add_argument("--tun", dest="link", action="store_const", const="tun",
                      help="`wan`: a network namespace joined by two tun devices and a delaying "
                           "forwarder (bench/tunlink.py; root; the default without netem)")
    link.add_argument("--relay", dest="link", action="store_const", const="relay",
                      help="`wan`: the TCP relay on loopback (bench/relay.py), even as root")
    parser.set_defaults(link="auto")
    parser.add_argument("--platform-ms", type=float, default=0.0, metavar="MS",
                        help="the fake platform's own response time in the `wan` item "
                             "(default: 0)")
    parser.add_argument("--json", type=Path, default=RESULTS_JSON, metavar="FILE",
                        help=f"raw numbers (default: {RESULTS_JSON.relative_to(ROOT)})")
    parser.add_argument("--markdown", type=Path, metavar="FILE",
                        help="also write the markdown report to FILE")
    parser.add_argument("--profile", action="store_true",
                        help="add a cProfile of the big-config `add` even when within budget")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--baseline", type=Path, metavar="SRC",
                        help="the src folder of another checkout of this repository: items 1 "
                             "and 2 (hook-warm, hook-unrelated) also measure its hook, "
                             "interleaved with this tree's, and report this tree / baseline")
    args = parser.parse_args(argv)
    chosen = [name.strip() for value in args.only for name in value.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in ITEMS]
    if unknown:
        parser.error(f"unknown item(s) {', '.join(unknown)}; choose from {', '.join(ITEMS)}")
    if args.baseline is not None:
        args.baseline = args.baseline.resolve()
        if not is_source(args.baseline):
            parser.error(f"--baseline {args.baseline}: no rescale_ssh/entry.py in it (give the "
                         "src folder of a checkout)")
    # The WAN item takes minutes of emulated round trips: it runs when named (--only wan).
    args.only = chosen or [name for name in ITEMS if name not in ON_REQUEST]
    return args

