"""The identity as the PuTTY key a saved session names: ``<identity>.ppk`` beside it.

PuTTY cannot read OpenSSH keys. The .ppk is made (as `key export --ppk` makes it: PPK version
3, encrypted with the key's own passphrase when it has one) only when none is there; one that
holds the identity's key already is used as it is, so no passphrase is asked twice. One that
holds another key is never replaced here: it may be the user's own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from rescale_ssh import validate
from rescale_ssh.errors import ConfigError
from rescale_ssh.keys import keypair, ppk

SUFFIX = ".ppk"


@dataclass(frozen=True)
class PuttyKey:
    path: str
    fingerprint: str
    encrypted: bool
    made: bool  # written by this run (False: it was there already)


def path_for(identity: str) -> str:
    return validate.local_path(identity + SUFFIX, field="PuTTY key file")


def ensure(identity: str, *, passphrase: keypair.Ask, dry_run: bool = False) -> PuttyKey:
    """The .ppk of ``identity``, made from it when missing (not with ``dry_run``)."""
    found = keypair.inspect(identity)  # a missing or unreadable identity: its own error and hint
    out = path_for(identity)
    if os.path.lexists(out):
        try:
            with open(out, "rb") as handle:
                data = handle.read(1024 * 1024)
        except OSError as exc:
            raise ConfigError(f"cannot read {out}: {exc.strerror or exc}",
                              "check the file's owner and mode") from None
        blob, _ = ppk.public_part(data, what=out)
        if blob != found.public.blob:
            raise ConfigError(
                f"{out} holds another key than {identity}",
                f"replace it with `rescale-ssh key export --ppk {out} --force`, or move it away")
        return PuttyKey(out, found.public.fingerprint, ppk.is_encrypted(data, what=out),
                        made=False)
    if dry_run:
        return PuttyKey(out, found.public.fingerprint, found.protected, made=False)
    done = keypair.export_ppk(identity, out, passphrase=passphrase)
    return PuttyKey(out, done.fingerprint, done.encrypted, made=True)
