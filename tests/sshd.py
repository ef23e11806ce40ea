"""Real sshd fixture (placeholder; being written)."""
