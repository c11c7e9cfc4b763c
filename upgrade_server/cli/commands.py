"""The commands that act on this server's database and files: create_app()
adds them to the app, so `upgrade-server ...` and `flask --app upgrade_server
...` both find them."""

from __future__ import annotations

from flask import Flask

from upgrade_server.cli import (
    accounts,
    audit,
    coverage,
    database,
    demo,
    inventory,
    keys,
    remote,
    remote_rollouts,
    service,
    tickets,
    tuf,
)


def register_commands(app: Flask) -> None:
    remote.remote_group.add_command(remote_rollouts.rollout_group)
    for group in (
        database.db_group,
        accounts.admin_group,
        accounts.user_group,
        accounts.token_group,
        accounts.accounts_group,
        inventory.org_group,
        inventory.product_group,
        inventory.device_group,
        coverage.coverage_group,
        service.service_group,
        tickets.tickets_group,
        audit.audit_group,
        demo.demo_command,
        demo.serve_command,
        remote.remote_group,  # also here, for `flask --app upgrade_server remote`
        keys.keys_group,
        tuf.tuf_group,
    ):
        app.cli.add_command(group)
