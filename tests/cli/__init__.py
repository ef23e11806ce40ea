"""Tests of src/rescale_ssh/cli/ (and its commands).

The command line: commands, usage errors, exit codes, completion, progress."""
