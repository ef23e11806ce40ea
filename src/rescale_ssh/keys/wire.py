"""The SSH wire encoding (RFC 4251 section 5): ``string``, ``mpint`` and ``uint32``.

Shared by the key files (the public key blob, OpenSSH's ``openssh-key-v1`` container) and
PuTTY's PPK format, whose MAC and private blobs are made of the same pieces.
"""

from __future__ import annotations

from rescale_ssh.errors import ConfigError


def string(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def mpint(value: int) -> bytes:
    """A non-negative integer, big-endian, with a leading zero byte when the top bit is set."""
    if value < 0:
        raise ValueError("negative mpint")
    if value == 0:
        return string(b"")
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    if raw[0] & 0x80:
        raw = b"\0" + raw
    return string(raw)


class Reader:
    """Reads wire values from ``data``; anything short or malformed is a ConfigError naming
    ``what`` (the file), never an IndexError."""

    def __init__(self, data: bytes, *, what: str) -> None:
        self.data = data
        self.offset = 0
        self.what = what

    def take(self, count: int) -> bytes:
        if count < 0 or self.offset + count > len(self.data):
            raise ConfigError(f"{self.what} is truncated or damaged",
                              "make the key file again, or import it from its original")
        chunk = self.data[self.offset : self.offset + count]
        self.offset += count
        return chunk

    def uint32(self) -> int:
        return int.from_bytes(self.take(4), "big")

    def string(self) -> bytes:
        return self.take(self.uint32())

    def text(self) -> str:
        return self.string().decode("utf-8", "replace")

    def mpint(self) -> int:
        return int.from_bytes(self.string(), "big", signed=True)

    def rest(self) -> bytes:
        return self.take(len(self.data) - self.offset)

    @property
    def done(self) -> bool:
        return self.offset >= len(self.data)
