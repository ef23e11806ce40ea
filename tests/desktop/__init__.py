"""Tests of src/rescale_ssh/desktop/ (and its commands).

PuTTY saved sessions and keys."""
