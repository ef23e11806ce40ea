"""Tests of src/rescale_ssh/platform/ (and its commands).

The platform client, its transports, resolution, log lines, the account, launch keys."""
