"""What ssh runs: the ``Match exec`` hook, the ProxyCommand, the fast launcher, the per-job files
and records, the sweeper. Standard library only (tests/test_import_graph.py)."""
