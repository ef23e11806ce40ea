"""Fast start for the commands ssh runs: ``python -I -S .../rescale_ssh/hook/launch.py hook ALIAS``.

``-S`` skips site-packages processing (a few ms on every ssh run) and ``-I`` ignores PYTHON*
variables and the user's site folder. The folder that holds the package replaces this script's
own folder at the head of sys.path (so no module of ours can shadow the standard library);
the hook's cold path enables site-packages itself when it needs requests.

Configs written before the package had rooms name ``.../rescale_ssh/launch.py``: that file is
kept as a shim which runs :func:`start` (tests/sshconfig/test_upgrade.py).
"""

import os
import sys


def start() -> None:
    """Run the command line of this process and leave at once."""
    from rescale_ssh.entry import main

    code = main()
    # ssh waits for the hook (and its ProxyCommand) to exit: skip the interpreter's shutdown,
    # which tears down every module one by one (~1.5 ms of each ssh run). Nothing else is left
    # to do: the files are closed, a sweeper is its own process.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    start()
