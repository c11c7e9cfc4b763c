from __future__ import annotations

import click

from upgrade_server.accounts.principal import Principal
from upgrade_server.audit.hooks import audit_checkpoints
from upgrade_server.audit.service import anchor_chain, verify_chain
from upgrade_server.cli import fail, transaction
from upgrade_server.errors import ConflictError
from upgrade_server.extensions import session


@click.group("audit", help="The audit log.")
def audit_group() -> None:
    pass


@audit_group.command(
    "verify", help="Check the hash chain and its checkpoint; name the first tampered entry."
)
def verify() -> None:
    report = verify_chain(session(), audit_checkpoints())
    if report.ok:
        anchored = (
            f"; the checkpoint of {report.anchored_at:%Y-%m-%d %H:%M:%S} UTC vouches for"
            f" {report.anchored}"
            if report.anchored_at
            else "; no checkpoint yet"
        )
        click.echo(f"audit chain intact: {report.checked} entries{anchored}")
        return
    if report.first_bad_id is None:
        raise click.ClickException(f"audit chain broken: {report.reason}")
    raise click.ClickException(
        f"audit chain broken at entry {report.first_bad_id}: {report.reason} "
        f"({report.checked} entries before it are intact)"
    )


@audit_group.command(
    "checkpoint",
    help="Anchor the whole log in this host's checkpoint now (entries other hosts wrote).",
)
@click.option(
    "--replace",
    is_flag=True,
    help="Also when the log no longer matches the checkpoint: after restoring a database"
    " backup, once you know why it differs.",
)
def checkpoint(replace: bool) -> None:
    try:
        with transaction() as db:
            entries = anchor_chain(db, Principal.cli(), audit_checkpoints(), replace=replace)
    except ConflictError as error:
        fail(error)
    click.echo(f"audit checkpoint: {entries} entries")
