"""PuTTY's private key format (PPK), after the PuTTY manual's Appendix C.

Written as version 3: the private blob is encrypted with AES-256-CBC when there is a passphrase,
with key, IV and MAC key (32 + 16 + 32 bytes) from Argon2id; the HMAC-SHA-256 covers the
algorithm, encryption, comment, public blob and the decrypted (padded) private blob. An
unencrypted file still carries that MAC, with an empty key. Versions 2 (SHA-1 based) and 3 are
read, for ed25519, RSA and ECDSA keys; ``cryptography`` does the arithmetic.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from rescale_ssh.errors import ConfigError, PassphraseRequired, UsageError
from rescale_ssh.keys import wire

PrivateKey = ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

MAGIC = "PuTTY-User-Key-File-"
LINE_WIDTH = 64
# PuTTYgen 0.78's defaults (it calibrates the passes to ~100 ms; 21 is what it picks on a
# typical machine). The memory cost is what makes guessing expensive.
ARGON2_MEMORY_KIB = 8192
ARGON2_PASSES = 21
ARGON2_PARALLELISM = 1
# A hostile file must not make us allocate gigabytes or spin for minutes.
MAX_ARGON2_MEMORY_KIB = 1024 * 1024
MAX_ARGON2_PASSES = 1000
MAX_ARGON2_PARALLELISM = 64
MAX_LINES = 1000

CURVES: dict[str, ec.EllipticCurve] = {
    "nistp256": ec.SECP256R1(),
    "nistp384": ec.SECP384R1(),
    "nistp521": ec.SECP521R1(),
}


@dataclass(frozen=True)
class Loaded:
    key: PrivateKey
    comment: str
    public_blob: bytes


def is_ppk(data: bytes) -> bool:
    return data.lstrip().startswith(MAGIC.encode())


def public_blob(key: PrivateKey) -> bytes:
    """The SSH wire form of the public key (what authorized_keys holds in base64)."""
    from cryptography.hazmat.primitives import serialization

    line = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return base64.b64decode(line.split()[1])


def _algorithm(key: PrivateKey) -> str:
    return wire.Reader(public_blob(key), what="the key").text()


def _private_blob(key: PrivateKey) -> bytes:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        from cryptography.hazmat.primitives import serialization

        seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                 serialization.NoEncryption())
        return wire.string(seed)
    if isinstance(key, rsa.RSAPrivateKey):
        numbers = key.private_numbers()
        return b"".join(wire.mpint(n) for n in (numbers.d, numbers.p, numbers.q, numbers.iqmp))
    return wire.mpint(key.private_numbers().private_value)


def dumps(key: PrivateKey, *, comment: str, passphrase: bytes | None) -> bytes:
    """The PPK version 3 text of ``key``; encrypted when ``passphrase`` is not empty."""
    if any(c in comment for c in "\r\n"):
        raise UsageError("a key comment cannot contain line breaks")
    algorithm = _algorithm(key)
    pub = public_blob(key)
    private = _private_blob(key)
    encryption = "aes256-cbc" if passphrase else "none"
    header = [
        f"{MAGIC}3: {algorithm}",
        f"Encryption: {encryption}",
        f"Comment: {comment}",
        *_lines("Public", pub),
    ]
    if passphrase:
        salt = os.urandom(16)
        cipher_key, iv, mac_key = _argon2(
            "Argon2id", passphrase, salt, ARGON2_MEMORY_KIB, ARGON2_PASSES, ARGON2_PARALLELISM
        )
        if len(private) % 16:
            private += os.urandom(16 - len(private) % 16)
        encryptor = Cipher(algorithms.AES(cipher_key), modes.CBC(iv)).encryptor()
        stored = encryptor.update(private) + encryptor.finalize()
        header += [
            "Key-Derivation: Argon2id",
            f"Argon2-Memory: {ARGON2_MEMORY_KIB}",
            f"Argon2-Passes: {ARGON2_PASSES}",
            f"Argon2-Parallelism: {ARGON2_PARALLELISM}",
            f"Argon2-Salt: {salt.hex()}",
        ]
    else:
        mac_key, stored = b"", private
    mac = hmac.new(mac_key, _mac_data(algorithm, encryption, comment, pub, private),
                   hashlib.sha256).hexdigest()
    lines = [*header, *_lines("Private", stored), f"Private-MAC: {mac}"]
    return ("\n".join(lines) + "\n").encode("utf-8")


def _lines(name: str, blob: bytes) -> list[str]:
    text = base64.b64encode(blob).decode("ascii")
    chunks = [text[i : i + LINE_WIDTH] for i in range(0, len(text), LINE_WIDTH)]
    return [f"{name}-Lines: {len(chunks)}", *chunks]


def _mac_data(algorithm: str, encryption: str, comment: str, pub: bytes, private: bytes
              ) -> bytes:
    return b"".join(wire.string(part) for part in (
        algorithm.encode(), encryption.encode(), comment.encode("utf-8"), pub, private,
    ))


class _Fields:
    """The ``Name: value`` lines of a PPK file, read in order."""

    def __init__(self, data: bytes, what: str) -> None:
        text = data.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n")
        self.lines = text.strip("\n").split("\n")
        self.index = 0
        self.what = what

    def damaged(self, detail: str) -> ConfigError:
        return ConfigError(f"{self.what} is not a valid PuTTY key file ({detail})",
                           "save it again from PuTTYgen (File → Save private key)")

    def take(self, name: str) -> str:
        if self.index >= len(self.lines):
            raise self.damaged(f"no {name} line")
        key, sep, value = self.lines[self.index].partition(": ")
        if not sep or key != name:
            raise self.damaged(f"expected {name} on line {self.index + 1}")
        self.index += 1
        return value

    def peek(self) -> str:
        return self.lines[self.index].partition(": ")[0] if self.index < len(self.lines) else ""

    def number(self, name: str, limit: int) -> int:
        value = self.take(name)
        if not value.isascii() or not value.isdigit() or not 0 < int(value) <= limit:
            raise self.damaged(f"{name} is {value[:20]!r}")
        return int(value)

    def blob(self, name: str) -> bytes:
        count = self.number(f"{name}-Lines", MAX_LINES)
        chunk = self.lines[self.index : self.index + count]
        if len(chunk) != count:
            raise self.damaged(f"fewer {name} lines than announced")
        self.index += count
        try:
            return base64.b64decode("".join(line.strip() for line in chunk), validate=True)
        except ValueError:
            raise self.damaged(f"the {name.lower()} key is not base64") from None


@dataclass(frozen=True)
class _Parsed:
    version: int
    algorithm: str
    encryption: str
    comment: str
    public: bytes
    kdf: tuple[str, int, int, int, bytes] | None
    private: bytes
    mac: str


def _parse(data: bytes, what: str) -> _Parsed:
    fields = _Fields(data, what)
    first = fields.lines[0] if fields.lines else ""
    magic, sep, algorithm = first.partition(": ")
    version = magic[len(MAGIC) :] if magic.startswith(MAGIC) else ""
    if not sep or version not in ("2", "3"):
        shown = version or "unknown"
        raise ConfigError(f"{what} is a PuTTY key file of version {shown}, which is not "
                          "supported (versions 2 and 3 are)",
                          "save it again with a current PuTTYgen")
    fields.index = 1
    encryption = fields.take("Encryption")
    if encryption not in ("none", "aes256-cbc"):
        raise fields.damaged(f"unknown encryption {encryption[:30]!r}")
    comment = fields.take("Comment")
    public = fields.blob("Public")
    kdf = None
    if version == "3" and encryption != "none":
        flavour = fields.take("Key-Derivation")
        if flavour not in ("Argon2id", "Argon2i", "Argon2d"):
            raise fields.damaged(f"unknown key derivation {flavour[:30]!r}")
        memory = fields.number("Argon2-Memory", MAX_ARGON2_MEMORY_KIB)
        passes = fields.number("Argon2-Passes", MAX_ARGON2_PASSES)
        lanes = fields.number("Argon2-Parallelism", MAX_ARGON2_PARALLELISM)
        try:
            salt = bytes.fromhex(fields.take("Argon2-Salt"))
        except ValueError:
            raise fields.damaged("the Argon2 salt is not hexadecimal") from None
        kdf = (flavour, memory, passes, lanes, salt)
    private = fields.blob("Private")
    mac = fields.take("Private-MAC").strip().lower()
    return _Parsed(int(version), algorithm, encryption, comment, public, kdf, private, mac)


def is_encrypted(data: bytes, *, what: str) -> bool:
    return _parse(data, what).encryption != "none"


def public_part(data: bytes, *, what: str) -> tuple[bytes, str]:
    """The public blob and comment, readable without the passphrase."""
    parsed = _parse(data, what)
    return parsed.public, parsed.comment


def loads(data: bytes, *, passphrase: bytes | None, what: str) -> Loaded:
    """Decrypt and check a PPK file; a wrong passphrase is a UsageError (the MAC fails)."""
    parsed = _parse(data, what)
    if parsed.encryption != "none" and not passphrase:
        raise PassphraseRequired(f"{what} is protected by a passphrase",
                         "type the passphrase when asked, or pass --passphrase-file FILE")
    private = parsed.private
    if parsed.version == 3:
        if parsed.kdf is not None:
            assert passphrase
            flavour, memory, passes, lanes, salt = parsed.kdf
            cipher_key, iv, mac_key = _argon2(flavour, passphrase, salt, memory, passes, lanes)
            private = _decrypt(cipher_key, iv, private, what)
        else:
            mac_key = b""
        digest = hashlib.sha256
    else:
        secret = passphrase if parsed.encryption != "none" and passphrase else b""
        if parsed.encryption != "none":
            cipher_key = (_sha1(b"\0\0\0\0" + secret) + _sha1(b"\0\0\0\1" + secret))[:32]
            private = _decrypt(cipher_key, bytes(16), private, what)
        mac_key = _sha1(b"putty-private-key-file-mac-key" + secret)
        digest = hashlib.sha1
    expected = hmac.new(mac_key, _mac_data(parsed.algorithm, parsed.encryption,
                                           parsed.comment, parsed.public, private),
                        digest).hexdigest()
    if not hmac.compare_digest(expected, parsed.mac):
        if parsed.encryption != "none":
            raise UsageError(f"wrong passphrase for {what}",
                             "type it again, or check the file given to --passphrase-file")
        raise ConfigError(f"{what} is damaged (its checksum does not match)",
                          "save it again from PuTTYgen")
    key = _private_key(parsed.algorithm, parsed.public, private, what)
    if public_blob(key) != parsed.public:
        raise ConfigError(f"{what} is damaged (its private and public halves differ)",
                          "save it again from PuTTYgen")
    return Loaded(key=key, comment=parsed.comment, public_blob=parsed.public)


def _sha1(data: bytes) -> bytes:
    # Version 2 files are defined with SHA-1; they are only read, never written.
    return hashlib.sha1(data).digest()  # noqa: S324


def _decrypt(cipher_key: bytes, iv: bytes, blob: bytes, what: str) -> bytes:
    if len(blob) % 16:
        raise ConfigError(f"{what} is damaged (the encrypted key has a wrong length)")
    decryptor = Cipher(algorithms.AES(cipher_key), modes.CBC(iv)).decryptor()
    return decryptor.update(blob) + decryptor.finalize()


def _argon2(flavour: str, passphrase: bytes, salt: bytes, memory: int, passes: int, lanes: int
            ) -> tuple[bytes, bytes, bytes]:
    from cryptography.hazmat.primitives.kdf import argon2

    kdf_class = getattr(argon2, flavour, None)
    if kdf_class is None:  # Argon2i/Argon2d arrived after Argon2id in cryptography
        raise ConfigError(f"this key needs {flavour}, which the installed cryptography lacks",
                          "upgrade cryptography, or save the key with Argon2id in PuTTYgen")
    if memory < 8 * lanes:
        raise ConfigError(f"the key's Argon2 memory ({memory} KiB) is below 8 × its lanes")
    material: bytes = kdf_class(salt=salt, length=80, iterations=passes, lanes=lanes,
                                memory_cost=memory).derive(passphrase)
    return material[:32], material[32:48], material[48:]


def _private_key(algorithm: str, public: bytes, private: bytes, what: str) -> PrivateKey:
    pub = wire.Reader(public, what=what)
    priv = wire.Reader(private, what=what)
    kind = pub.text()
    if kind != algorithm:
        raise ConfigError(f"{what} is damaged (it names {algorithm} but holds {kind})")
    try:
        if kind == "ssh-ed25519":
            return ed25519.Ed25519PrivateKey.from_private_bytes(priv.string())
        if kind == "ssh-rsa":
            e, n = pub.mpint(), pub.mpint()
            d, p, q, iqmp = priv.mpint(), priv.mpint(), priv.mpint(), priv.mpint()
            numbers = rsa.RSAPrivateNumbers(
                p=p, q=q, d=d, dmp1=d % (p - 1), dmq1=d % (q - 1), iqmp=iqmp,
                public_numbers=rsa.RSAPublicNumbers(e=e, n=n),
            )
            return numbers.private_key()
        if kind.startswith("ecdsa-sha2-") and kind[len("ecdsa-sha2-"):] in CURVES:
            curve = CURVES[kind[len("ecdsa-sha2-"):]]
            return ec.derive_private_key(priv.mpint(), curve)
    except (ValueError, ZeroDivisionError):
        raise ConfigError(f"{what} is damaged (the key numbers are inconsistent)") from None
    raise ConfigError(f"{what} holds a {kind} key, which rescale-ssh does not handle",
                      "use an ed25519, RSA or ECDSA key")
