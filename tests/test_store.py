"""The tool's small files (store.py): the names it gives them."""

from __future__ import annotations

import zlib

from hypothesis import given
from hypothesis import strategies as st

from rescale_ssh import store


@given(st.binary(max_size=200))
def test_crc32_is_zlibs(data: bytes) -> None:
    assert store.crc32(data) == zlib.crc32(data)


def test_names_are_those_earlier_versions_gave() -> None:
    """A record, lock or block file of a job keeps its name across the upgrade (the values
    zlib.crc32 gave before store.crc32 replaced it)."""
    assert store.safe_name("", "Fotxeb") == f"Fotxeb-{zlib.crc32(b'Fotxeb'):08x}"
    assert store.safe_name("rescale-", "fotxeb") == "rescale-fotxeb-" + \
        f"{zlib.crc32(b'fotxeb'):08x}"
    assert store.safe_name("job-", "") == "job--00000000"
