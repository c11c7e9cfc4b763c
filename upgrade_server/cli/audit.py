from __future__ import annotations

import click

from upgrade_server.audit.service import verify_chain
from upgrade_server.extensions import session


@click.group("audit", help="The audit log.")
def audit_group() -> None:
    pass


@audit_group.command("verify", help="Check the hash chain; name the first tampered entry.")
def verify() -> None:
    report = verify_chain(session())
    if report.ok:
        click.echo(f"audit chain intact: {report.checked} entries")
        return
    raise click.ClickException(
        f"audit chain broken at entry {report.first_bad_id}: {report.reason} "
        f"({report.checked} entries before it are intact)"
    )
