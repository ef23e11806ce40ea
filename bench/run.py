#!/usr/bin/env python3
"""``python bench/run.py``: the benchmarks, the same as ``python -m bench`` (bench/driver.py).

The package's folder is this script's; its parent (the repository, for ``bench`` and the fake
platform and sshd of ``tests/``) replaces it at the head of sys.path, so no module of the package
can shadow one of the standard library."""

import sys
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.driver import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
