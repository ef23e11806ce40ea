"""The user's ssh config and the tool's files beside it. Its format: the marked section, Host
block rendering, ssh.conf, claims, known_hosts, connection sharing. Its operations: add, remove,
sync, install, the tool's files, saved forwards (the writer itself is configfile.py)."""
