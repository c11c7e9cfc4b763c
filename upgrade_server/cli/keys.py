"""`upgrade-server keys`: offline signing keys, made on the holder's own machine."""

from __future__ import annotations

import os
from pathlib import Path

import click
from cryptography.hazmat.primitives import serialization

from upgrade_server.signing.keys import generate, public_pem


@click.group("keys", help="Offline Ed25519 signing keys for the TUF root and targets roles.")
def keys_group() -> None:
    pass


@keys_group.command("generate", help="Write PREFIX.key (private, 0600) and PREFIX.pub.pem.")
@click.argument("prefix", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--password", is_flag=True, help="Encrypt the private key with a password.")
def generate_key(prefix: Path, password: bool) -> None:
    private_path = prefix.with_name(prefix.name + ".key")
    public_path = prefix.with_name(prefix.name + ".pub.pem")
    for path in (private_path, public_path):
        if path.exists():
            raise click.ClickException(f"{path} exists; refusing to overwrite a key")
    secret = (
        click.prompt("Password", hide_input=True, confirmation_prompt=True).encode()
        if password
        else None
    )
    private, public = generate()
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(secret) if secret else serialization.NoEncryption()
    )
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public_path.write_bytes(public_pem(public))
    click.echo(f"keyid {public.keyid}")
    click.echo(f"private key: {private_path} (keep it offline; never upload it)")
    click.echo(f"public key:  {public_path} (give this to the repository administrator)")
