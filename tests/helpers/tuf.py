"""Against a live server (tests/live.py): the publisher's CLI, and the root
metadata a device is provisioned with."""

from __future__ import annotations

import urllib.request
from typing import Any

from click.testing import CliRunner

from upgrade_server.cli.remote import remote_group


def run_remote(live: Any, *args: str) -> str:
    """`upgrade-server remote --server <live> <args>` as the live server's admin; its output."""
    result = CliRunner().invoke(
        remote_group,
        ["--server", live.url, *args],
        env={"UPGRADE_SERVER_TOKEN": live.admin_token},
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return result.output


def publish_file(live: Any, product: str, version: str, artifact: Any, *extra: str) -> str:
    """Publish a file on the stable channel with the publisher CLI."""
    args = ["publish", product, version, str(artifact), "--channel", "stable", *extra]
    return run_remote(live, *args, "--no-progress")


def root_of(live: Any, product: str) -> bytes:
    """The product's first root metadata, as a device is provisioned with it."""
    with urllib.request.urlopen(f"{live.url}/tuf/{product}/metadata/1.root.json") as r:
        return bytes(r.read())
