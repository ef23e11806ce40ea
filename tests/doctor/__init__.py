"""Tests of src/rescale_ssh/doctor/ (and its commands).

doctor's checks."""
