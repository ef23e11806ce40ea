"""``doctor``: why a connection does or does not work, as checks with one fix each."""
