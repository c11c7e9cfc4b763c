"""Ed25519 keys: online private keys as files in a key folder, public keys as TUF keys.

Private keys never enter the database, a log or a response. Online keys live
under <keys_path>/<product>/<role>-<keyid>.pem with mode 0600; offline keys stay
with their holders, who sign with `upgrade-server remote sign --key FILE`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from securesystemslib.signer import CryptoSigner, Key, SSlibKey

from upgrade_server.errors import InvalidInputError, SigningError


def generate() -> tuple[Ed25519PrivateKey, SSlibKey]:
    private = Ed25519PrivateKey.generate()
    return private, SSlibKey.from_crypto(private.public_key())


def private_pem(private: Ed25519PrivateKey) -> bytes:
    return private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private(pem: bytes, password: bytes | None = None) -> CryptoSigner:
    key = serialization.load_pem_private_key(pem, password=password)
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningError("only Ed25519 keys are used here")
    return CryptoSigner(key, SSlibKey.from_crypto(key.public_key()))


def public_from_pem(pem: bytes) -> SSlibKey:
    """An Ed25519 public key from its PEM. Raises ValueError for anything else."""
    try:
        public = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ValueError("not a public key in PEM") from exc
    if not isinstance(public, Ed25519PublicKey):
        # Offline holders sign with `remote sign`, which takes Ed25519 keys only.
        raise ValueError(f"not an Ed25519 key ({type(public).__name__.removeprefix('_')})")
    return SSlibKey.from_crypto(public)


def public_keys_from_pems(pems: list[str], field: str) -> list[SSlibKey]:
    """Distinct Ed25519 public keys from PEM texts given by a caller.

    Raises InvalidInputError naming each bad one as `<field>[<index>]`.
    """
    keys: list[SSlibKey] = []
    errors: list[dict[str, Any]] = []
    first_at: dict[str, int] = {}
    for index, pem in enumerate(pems):
        where = f"{field}[{index}]"
        try:
            key = public_from_pem(pem.encode())
        except ValueError as exc:  # UnicodeEncodeError (a lone surrogate) is one too
            errors.append({"field": where, "message": str(exc)})
            continue
        if key.keyid in first_at:
            errors.append({"field": where, "message": f"repeats {field}[{first_at[key.keyid]}]"})
            continue
        first_at[key.keyid] = index
        keys.append(key)
    if errors:
        raise InvalidInputError("the keys are invalid", errors)
    return keys


def public_pem(key: Key) -> bytes:
    """The PEM of a public key, for holders to keep beside their private key."""
    signer_key = SSlibKey.from_dict(key.keyid, key.to_dict())
    raw = bytes.fromhex(signer_key.keyval["public"])
    return Ed25519PublicKey.from_public_bytes(raw).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


class KeyFolder:
    """Online private keys as files, one folder per product."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, product: str, role: str, keyid: str) -> Path:
        return self.root / product / f"{role}-{keyid}.pem"

    def save(self, product: str, role: str, keyid: str, private: Ed25519PrivateKey) -> Path:
        path = self._path(product, role, keyid)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(private_pem(private))
        return path

    def signer(self, product: str, role: str, keyid: str) -> CryptoSigner:
        path = self._path(product, role, keyid)
        try:
            return load_private(path.read_bytes())
        except OSError as exc:
            raise SigningError(
                f"the online {role} key {keyid[:12]}… of {product} is missing from {path.parent}"
            ) from exc

    def remove(self, product: str, role: str, keyid: str) -> None:
        self._path(product, role, keyid).unlink(missing_ok=True)
