"""rescale-ssh: every Rescale job a real OpenSSH host."""

__version__ = "0.1.0"
