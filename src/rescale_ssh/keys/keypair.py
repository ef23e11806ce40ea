"""The SSH key pair at the identity path: generate, read, fingerprint, import, export.

Keys are made with ``cryptography`` (never by running ssh-keygen) and written in OpenSSH's
format: the private key 0600 (passphrase-protected ones need ``bcrypt``), the public key next to
it as ``<identity>.pub`` with a comment. The public half of an ``openssh-key-v1`` file is stored
in clear, so fingerprints and ``doctor`` never need the passphrase.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import os
import socket
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from rescale_ssh import configfile, paths
from rescale_ssh.errors import ConfigError, PassphraseRequired, UsageError
from rescale_ssh.keys import ppk, wire
from rescale_ssh.keys.ppk import PrivateKey

KEY_TYPES = ("ed25519", "rsa")
DEFAULT_RSA_BITS = 3072  # ssh-keygen's default; NIST's floor for use beyond 2030
MIN_RSA_BITS = 3072
MAX_RSA_BITS = 16384
OPENSSH_MAGIC = b"openssh-key-v1\0"
OPENSSH_PEM = b"-----BEGIN OPENSSH PRIVATE KEY-----"
# Fields of each key type in the clear private section, before the comment (PROTOCOL.key).
PRIVATE_FIELDS = {"ssh-ed25519": 2, "ssh-rsa": 6, "ssh-dss": 5}
LABELS = {"ssh-ed25519": "ED25519", "ssh-rsa": "RSA", "ssh-dss": "DSA"}


@dataclass(frozen=True)
class PublicKey:
    kind: str  # the wire name: ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256, ...
    blob: bytes
    comment: str = ""

    @classmethod
    def parse(cls, text: str, *, what: str) -> PublicKey:
        """``<type> <base64> [comment]``, as in a .pub file or authorized_keys."""
        parts = text.strip().split(None, 2)
        try:
            blob = base64.b64decode(parts[1], validate=True)
        except (IndexError, ValueError):
            raise ConfigError(f"{what} is not an OpenSSH public key") from None
        kind = wire.Reader(blob, what=what).text()
        if kind != parts[0]:
            raise ConfigError(f"{what} is not an OpenSSH public key (it names {parts[0][:30]!r} "
                              f"but holds {kind[:30]!r})")
        return cls(kind, blob, parts[2].strip() if len(parts) > 2 else "")

    @property
    def material(self) -> str:
        """``<type> <base64>``: what two copies of one key have in common."""
        return f"{self.kind} {base64.b64encode(self.blob).decode('ascii')}"

    @property
    def line(self) -> str:
        return f"{self.material} {self.comment}" if self.comment else self.material

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256(self.blob).digest()
        return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")

    @property
    def label(self) -> str:
        return "ECDSA" if self.kind.startswith("ecdsa-") else LABELS.get(self.kind,
                                                                       self.kind.upper())

    @property
    def bits(self) -> int:
        reader = wire.Reader(self.blob, what="the public key")
        reader.text()
        if self.kind == "ssh-rsa":
            reader.mpint()
            return reader.mpint().bit_length()
        if self.kind.startswith("ecdsa-"):
            return {"nistp256": 256, "nistp384": 384, "nistp521": 521}.get(reader.text(), 0)
        if self.kind == "ssh-dss":
            return reader.mpint().bit_length()
        return 256  # ed25519


@dataclass(frozen=True)
class KeyFile:
    """What is at an identity path, read without the passphrase."""

    path: str
    public: PublicKey
    protected: bool
    pub_file: bool  # <path>.pub exists
    format: str = "openssh"  # or "ppk" (which ssh cannot use) or "pem"
    comment_known: bool = True  # False: encrypted with the key, or a PEM key without a .pub

    def fingerprint_line(self) -> str:
        """Exactly what ``ssh-keygen -l -f <path>`` prints."""
        p = self.public
        comment = p.comment if self.comment_known else "no comment"
        return f"{p.bits} {p.fingerprint} {comment} ({p.label})"


def public_key_of(key: PrivateKey, comment: str = "") -> PublicKey:
    blob = ppk.public_blob(key)
    return PublicKey(wire.Reader(blob, what="the key").text(), blob, comment)


def default_comment() -> str:
    host = socket.gethostname().split(".")[0] or "localhost"
    return f"rescale-ssh@{host} {dt.date.today().isoformat()}"


def read_passphrase_file(path: str) -> bytes:
    """The first line of ``path`` (without its line break), as ssh tools read such files."""
    try:
        with open(path, "rb") as handle:
            line = handle.readline(64 * 1024)
    except OSError as exc:
        raise UsageError(f"cannot read the passphrase file {path}: {exc.strerror or exc}",
                         "check the path given to --passphrase-file") from None
    return line.rstrip(b"\r\n")


# -- reading ------------------------------------------------------------------------------------


def _read(path: str, *, what: str, hint: str = "`rescale-ssh key generate` makes one, or "
          "pass --identity PATH") -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(1024 * 1024)
    except FileNotFoundError:
        raise ConfigError(f"no key at {path}", hint) from None
    except IsADirectoryError:
        raise ConfigError(f"{what} {path} is a directory, not a key file") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}",
                          "check the file's owner and mode") from None


def _openssh_container(data: bytes, what: str) -> wire.Reader | None:
    """The decoded ``openssh-key-v1`` container, positioned after its magic; None when the
    file is another format."""
    text = data.strip()
    if not text.startswith(OPENSSH_PEM):
        return None
    body = b"".join(line for line in text.splitlines()[1:] if not line.startswith(b"-----"))
    try:
        raw = base64.b64decode(body, validate=True)
    except ValueError:
        raise ConfigError(f"{what} is damaged (not base64)") from None
    if not raw.startswith(OPENSSH_MAGIC):
        raise ConfigError(f"{what} is not an OpenSSH private key")
    reader = wire.Reader(raw, what=what)
    reader.take(len(OPENSSH_MAGIC))
    return reader


def _inspect_openssh(reader: wire.Reader, what: str) -> tuple[PublicKey, bool]:
    cipher = reader.text()
    reader.string()  # kdf name
    reader.string()  # kdf options
    if reader.uint32() != 1:
        raise ConfigError(f"{what} holds several keys; rescale-ssh needs exactly one")
    blob = reader.string()
    kind = wire.Reader(blob, what=what).text()
    private = reader.string()
    comment = _clear_comment(private, kind, what) if cipher == "none" else ""
    return PublicKey(kind, blob, comment), cipher != "none"


def _clear_comment(private: bytes, kind: str, what: str) -> str:
    section = wire.Reader(private, what=what)
    section.take(8)  # the two check integers
    section.string()  # the key type again
    count = 3 if kind.startswith("ecdsa-") else PRIVATE_FIELDS.get(kind)
    if count is None:
        return ""
    for _ in range(count):
        section.string()
    return section.text()


def inspect(path: str) -> KeyFile:
    """The key at ``path``: its public half (comment from ``<path>.pub`` when there is one, as
    ssh-keygen does) and whether a passphrase protects it."""
    what = "the key file"
    data = _read(path, what=what)
    pub_path = f"{path}.pub"
    pub_text = None
    with contextlib.suppress(OSError, UnicodeDecodeError):
        pub_text = Path(pub_path).read_text(encoding="utf-8")
    from_pub = PublicKey.parse(pub_text, what=pub_path) if pub_text else None
    container = _openssh_container(data, f"{what} {path}")
    kind = "openssh" if container is not None else "ppk" if ppk.is_ppk(data) else "pem"
    known = True
    if container is not None:
        public, protected = _inspect_openssh(container, f"{what} {path}")
        known = not protected  # the comment is encrypted along with the key
    elif ppk.is_ppk(data):
        blob, comment = ppk.public_part(data, what=f"{what} {path}")
        public = PublicKey(wire.Reader(blob, what=path).text(), blob, comment)
        protected = ppk.is_encrypted(data, what=path)
    else:
        protected = b"ENCRYPTED" in data[:200]
        if protected and from_pub is None:
            raise ConfigError(f"cannot read the public half of {path} without its passphrase",
                              f"`rescale-ssh key import {path}` converts it to OpenSSH's "
                              "format, which keeps the public half readable")
        public = from_pub or public_key_of(_load_pem(data, None, path))
        known = False
    if from_pub is not None:
        if from_pub.blob != public.blob:
            raise ConfigError(f"{pub_path} does not belong to {path} (another key)",
                              f"delete {pub_path}, or regenerate it: ssh-keygen -y -f {path}")
        public, known = from_pub, True
    return KeyFile(path=path, public=public, protected=protected,
                   pub_file=from_pub is not None, format=kind, comment_known=known)


def load(path: str, passphrase: bytes | None) -> tuple[PrivateKey, str]:
    """The private key at ``path`` and its comment; needs the passphrase when protected."""
    what = f"the key file {path}"
    data = _read(path, what="the key file")
    if ppk.is_ppk(data):
        loaded = ppk.loads(data, passphrase=passphrase, what=what)
        return loaded.key, loaded.comment
    container = _openssh_container(data, what)
    if container is not None:
        from cryptography.hazmat.primitives import serialization

        if not _inspect_openssh(container, what)[1]:
            passphrase = None  # cryptography refuses a passphrase for a clear key
        try:
            key = serialization.load_ssh_private_key(data, passphrase or None)
        except TypeError:
            raise _needs_passphrase(what) from None
        except ValueError:
            raise _wrong_passphrase(what) if passphrase else ConfigError(
                f"{what} is damaged", "import the key again from its original") from None
        return _checked(key, what), ""
    return _load_pem(data, passphrase, what), ""


def _load_pem(data: bytes, passphrase: bytes | None, what: str) -> PrivateKey:
    from cryptography.hazmat.primitives import serialization

    if b"-----BEGIN" not in data[:100]:
        raise ConfigError(f"{what} is not a private key rescale-ssh can read",
                          "use an OpenSSH private key (ssh-keygen) or a PuTTY .ppk file")
    if b"ENCRYPTED" not in data[:200]:
        passphrase = None
    try:
        key = serialization.load_pem_private_key(data, passphrase or None)
    except TypeError:
        raise _needs_passphrase(what) from None
    except ValueError:
        if passphrase:
            raise _wrong_passphrase(what) from None
        raise ConfigError(f"{what} is not a private key rescale-ssh can read",
                          "use an OpenSSH private key (ssh-keygen) or a PuTTY .ppk file"
                          ) from None
    return _checked(key, what)


def _checked(key: object, what: str) -> PrivateKey:
    if isinstance(key, ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
                  | ec.EllipticCurvePrivateKey):
        return key
    raise ConfigError(f"{what} holds a {type(key).__name__}, which rescale-ssh does not handle",
                      "use an ed25519, RSA or ECDSA key")


def _needs_passphrase(what: str) -> PassphraseRequired:
    return PassphraseRequired(f"{what} is protected by a passphrase",
                      "type the passphrase when asked, or pass --passphrase-file FILE")


def _wrong_passphrase(what: str) -> UsageError:
    return UsageError(f"wrong passphrase for {what}",
                      "type it again, or check the file given to --passphrase-file")


# -- writing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Written:
    key: KeyFile
    replaced: bool  # an earlier key was overwritten (--force)


Ask = Callable[[], "bytes | None"]  # asks for a passphrase when (and only when) one is needed
MIN_PASSPHRASE = 5  # ssh-keygen refuses shorter ones


def generate(path: str, *, kind: str = "ed25519", bits: int | None = None,
             passphrase: Ask, comment: str | None = None, force: bool = False) -> Written:
    """A new key pair at ``path`` / ``path.pub``; refuses to overwrite without ``force``.
    ``passphrase`` is asked only once everything else was checked."""
    if kind not in KEY_TYPES:
        raise UsageError(f"unknown key type {kind!r}", f"use one of: {', '.join(KEY_TYPES)}")
    if kind != "rsa" and bits is not None:
        raise UsageError("--bits applies to RSA keys only", "drop --bits, or add --type rsa")
    if kind == "rsa" and bits is not None and not MIN_RSA_BITS <= bits <= MAX_RSA_BITS:
        raise UsageError(f"RSA keys need {MIN_RSA_BITS} to {MAX_RSA_BITS} bits, not {bits}",
                         f"--bits {MIN_RSA_BITS} or more (4096 is common)")
    comment = _checked_comment(default_comment() if comment is None else comment)
    replaced = _refuse_overwrite(path, force=force)
    secret = passphrase()
    if secret is not None and len(secret) < MIN_PASSPHRASE:
        raise UsageError(f"the passphrase is too short (at least {MIN_PASSPHRASE} characters)",
                         "choose a longer one, or use --no-passphrase for a key without one")
    key: PrivateKey
    if kind == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits or DEFAULT_RSA_BITS)
    else:
        key = ed25519.Ed25519PrivateKey.generate()
    return Written(_write_pair(path, key, comment, secret or None), replaced)


def import_key(source: str, path: str, *, passphrase: Ask, force: bool = False,
               comment: str | None = None) -> Written:
    """Copy an OpenSSH, PEM or PPK private key to ``path`` in OpenSSH's format.

    An OpenSSH key is copied byte for byte (it keeps its passphrase without asking for it);
    others are converted, protected by the same passphrase they had.
    """
    if os.path.exists(path) and os.path.exists(source) and os.path.samefile(source, path):
        raise UsageError(f"{source} is already the identity file")
    what = f"the key file {source}"
    data = _read(source, what="the key file", hint="check the path of the key to import")
    replaced = _refuse_overwrite(path, force=force)
    if _openssh_container(data, what) is not None:
        found = inspect(source)
        text = _checked_comment(comment if comment is not None else (
            found.public.comment if found.comment_known and found.public.comment
            else default_comment()))
        public = PublicKey(found.public.kind, found.public.blob, text)
        _install(path, data, (public.line + "\n").encode())
        return Written(inspect(path), replaced)
    secret = passphrase() if is_protected(data) else None
    key, own_comment = load(source, secret)
    if comment is None:
        comment = own_comment or _pub_comment(source) or default_comment()
    return Written(_write_pair(path, key, _checked_comment(comment), secret), replaced)


@dataclass(frozen=True)
class Exported:
    path: str
    fingerprint: str
    encrypted: bool


def export_ppk(path: str, out: str, *, passphrase: Ask, force: bool = False) -> Exported:
    """Write the key at ``path`` to ``out`` as PuTTY PPK version 3, encrypted with the key's
    own passphrase when it has one."""
    found = inspect(path)
    if os.path.lexists(out) and not force:
        raise ConfigError(f"{out} already exists", "pass --force to replace it")
    secret = passphrase() if found.protected else None
    key, _ = load(path, secret)
    comment = found.public.comment
    data = ppk.dumps(key, comment=comment, passphrase=secret)
    _atomic_write(out, data, 0o600)
    return Exported(out, found.public.fingerprint, encrypted=bool(secret))


def is_protected(data: bytes) -> bool:
    """Whether a private key file's bytes need a passphrase (any supported format)."""
    container = _openssh_container(data, "the key file")
    if container is not None:
        return _inspect_openssh(container, "the key file")[1]
    if ppk.is_ppk(data):
        return ppk.is_encrypted(data, what="the key file")
    return b"ENCRYPTED" in data[:200]


def _pub_comment(source: str) -> str:
    with contextlib.suppress(OSError, UnicodeDecodeError, ConfigError):
        return PublicKey.parse(Path(f"{source}.pub").read_text(encoding="utf-8"),
                               what=f"{source}.pub").comment
    return ""


def _checked_comment(comment: str) -> str:
    if not comment.isprintable():
        raise UsageError("the key comment contains line breaks or control characters")
    return comment.strip()


def _refuse_overwrite(path: str, *, force: bool) -> bool:
    existing = [p for p in (path, f"{path}.pub") if os.path.lexists(p)]
    if existing and not force:
        raise ConfigError(
            f"{existing[0]} already exists; not overwriting it",
            "pass --force to replace it (clusters launched with the old key will no longer "
            "accept you), or choose another path with --identity",
        )
    return bool(existing)


def _write_pair(path: str, key: PrivateKey, comment: str, passphrase: bytes | None) -> KeyFile:
    from cryptography.hazmat.primitives import serialization

    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase
        else serialization.NoEncryption()
    )
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                encryption)
    public = public_key_of(key, comment)
    _install(path, private, (public.line + "\n").encode())
    return inspect(path)


def _install(path: str, private: bytes, public: bytes) -> None:
    folder = Path(path).parent
    if not folder.is_dir():
        paths.private_dir(folder)  # ~/.ssh: 0700, as ssh wants it
    _atomic_write(path, private, 0o600)
    _atomic_write(f"{path}.pub", public, 0o644)


def _atomic_write(path: str, data: bytes, mode: int) -> None:
    configfile.replace_file(Path(path), data, mode=mode)


def mode_of(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)
