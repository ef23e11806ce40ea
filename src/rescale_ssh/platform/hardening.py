"""No core dump of a process that holds the API key (issue 14: a dump of a running command held
five copies of it).

:func:`no_core_dumps` sets ``RLIMIT_CORE`` to 0 (soft and hard: the process cannot raise it
again, nor can what it starts) and, on Linux, makes the process non-dumpable
(``PR_SET_DUMPABLE`` 0): no core file whatever ``core_pattern`` says (a pipe to systemd-coredump
or apport ignores the limit), and no other process of the user may ptrace it or read its
memory through ``/proc``. The process itself still reads its own ``/proc/self`` (the kernel
lets a thread group at its own entries); programs it starts with exec are dumpable again, only
the limit of 0 is inherited. Standard library only; costs ctypes' import, on cold paths only.
"""

from __future__ import annotations

from rescale_ssh import posix

_done = False


def no_core_dumps() -> None:
    """Best effort, once a process: where a call is not there (or refused), the rest still
    applies."""
    global _done
    if _done:
        return
    _done = True
    posix.no_core_limit()  # Windows: no core files to speak of
    posix.not_dumpable()
