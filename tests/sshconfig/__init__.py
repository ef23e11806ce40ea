"""Tests of src/rescale_ssh/sshconfig/ (and its commands).

The user's ssh config: the section, blocks, sharing, upgrades, real users' configs."""
