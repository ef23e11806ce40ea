"""The user's ssh config and the tool's files beside it: the marked section, the locked atomic
writer, Host block rendering, known_hosts, connection sharing, and add/remove/sync/install."""
