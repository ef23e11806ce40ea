"""Fake Rescale platform (placeholder; being written)."""
