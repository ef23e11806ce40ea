"""Tests of src/rescale_ssh/keys/ (and its commands).

Key pairs, PPK, the SSH wire format."""
