"""Benchmarks of rescale-ssh, each against a baseline measured in the same run (bench/README.md).

``python -m bench`` or ``python bench/run.py``; the options are bench/options.py's.
"""
