"""SSH keys: the key pair at the identity path, PuTTY's PPK format, the SSH wire encoding."""
