"""Console-script entry point.

Kept to the standard library: ``hook`` and ``proxy`` (run by ssh itself, on every connection)
must not pay for Typer, requests or cryptography; everything else loads the Typer CLI.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    asks_help = args[1:] in (["--help"], ["-h"])  # the CLI prints their help (cli/app.py)
    if args and args[0] == "hook" and not asks_help:
        from rescale_ssh.hook.matcher import main as hook_main

        return hook_main(args[1:])
    if args and args[0] == "proxy" and not asks_help:
        from rescale_ssh.hook.proxy import main as proxy_main

        return proxy_main(args[1:])
    from rescale_ssh.cli import boundary

    debug = boundary.wants_debug(args)

    def run_cli() -> int:
        from rescale_ssh.cli.app import run

        return run(args)

    return boundary.guarded(run_cli, debug=debug)
