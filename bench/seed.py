"""A database with many devices and releases, inserted in bulk for the benches."""

from __future__ import annotations

import functools
import hashlib
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import create_engine, insert

from upgrade_server import tokens
from upgrade_server.devices.models import Device, DeviceToken
from upgrade_server.entitlements import coverage
from upgrade_server.entitlements.coverage import Kind
from upgrade_server.migrate import upgrade
from upgrade_server.organisations.models import Organisation
from upgrade_server.products.models import HardwareRevision, Product
from upgrade_server.releases.models import Channel, Release, ReleaseChannel
from upgrade_server.releases.versions import sort_key
from upgrade_server.rollouts.models import Rollout

BATCH = 20_000


@functools.cache
def _coverage(accepted_on: date) -> dict[str, Any]:
    grants = coverage.promise(
        Kind.UPGRADES, coverage.DEFAULT_TERMS[Kind.UPGRADES], accepted_on, accepted_on
    )
    stored = coverage.stored_form(coverage.windows(grants), "Asia/Shanghai")
    return {
        "delivered_on": accepted_on,
        "accepted_on": accepted_on,
        "upgrade_windows": stored,
        "upgrade_through": date.fromisoformat(stored["through"]) if stored["through"] else None,
    }


def device_secret(i: int) -> str:
    return f"{tokens.DEVICE_TOKEN_PREFIX}bench-{i:08d}"


def seed(url: str, devices: int, releases: int, rollout: bool = False) -> None:
    """Migrate an empty database; add one product with `releases` published
    releases, one a day up to today, and `devices` devices on 1.0.0 accepted
    over the last 1,216 days: nine in ten are covered and offered the newest;
    the rest, expired up to 120 days ago, get an older release and the hint.
    `rollout`: the newest release is rolled out, its first wave (10 %) open."""
    upgrade(url)
    engine = create_engine(url)
    now = datetime.now(UTC)
    today = now.astimezone(ZoneInfo("Asia/Shanghai")).date()
    with engine.begin() as conn:
        conn.execute(
            insert(Organisation),
            [
                {
                    "id": 1,
                    "slug": "bench",
                    "name": "Bench",
                    "timezone": "Asia/Shanghai",
                    "region": "other",
                    "created_at": now,
                }
            ],
        )
        conn.execute(
            insert(Product),
            [{"id": 1, "code": "gw", "name": "GW", "description": "", "created_at": now}],
        )
        conn.execute(
            insert(HardwareRevision),
            [
                {"id": 1, "product_id": 1, "code": "rev-a", "name": "", "created_at": now},
                {"id": 2, "product_id": 1, "code": "rev-b", "name": "", "created_at": now},
            ],
        )
        conn.execute(
            insert(Channel),
            [
                {"id": i + 1, "product_id": 1, "name": name, "rank": i}
                for i, name in enumerate(("dev", "beta", "stable"))
            ],
        )
        rows = []
        for i in range(releases):
            version = f"1.{i // 100 + 1}.{i % 100}"
            rows.append(
                {
                    "id": i + 1,
                    "product_id": 1,
                    "version": version,
                    "version_key": sort_key(version),
                    "status": "published",
                    "artifact_sha256": hashlib.sha256(version.encode()).hexdigest(),
                    "artifact_size": 50_000_000,
                    "filename": f"gw-{version}.bin",
                    "target_path": f"{version}/gw-{version}.bin",
                    "min_from_version": None,
                    "min_from_key": None,
                    "security_fix": False,
                    "notes": {},
                    "guidance": {},
                    "hardware_revisions": ["rev-a", "rev-b"],
                    "hardware_key": ",rev-a,rev-b,",
                    "requirements": [],
                    "parameters": [],
                    "created_at": now,
                    "created_by": "bench",
                    "published_at": now - timedelta(days=releases - 1 - i),
                    "downloads": 0,
                }
            )
        if rows:  # (an empty list would insert one row of defaults)
            conn.execute(insert(Release), rows)
            conn.execute(
                insert(ReleaseChannel),
                [{"release_id": i + 1, "channel_id": 3, "added_at": now} for i in range(releases)],
            )
        for start in range(0, devices, BATCH):
            block = range(start, min(devices, start + BATCH))
            conn.execute(
                insert(Device),
                [
                    {
                        "id": i + 1,
                        "serial": f"SN-{i:08d}",
                        "product_id": 1,
                        "hardware_revision_id": 1 + i % 2,
                        "organisation_id": 1,
                        "site": "",
                        "current_version": "1.0.0",
                        "channel": "stable",
                        "inventory": {},
                        "created_at": now,
                        **_coverage(today - timedelta(days=(i * 7919) % 1216)),
                    }
                    for i in block
                ],
            )
            conn.execute(
                insert(DeviceToken),
                [
                    {
                        "device_id": i + 1,
                        "token_hash": tokens.hash_secret(device_secret(i)),
                        "prefix": device_secret(i)[:12],
                        "created_at": now,
                    }
                    for i in block
                ],
            )
        if rollout and releases:
            conn.execute(
                insert(Rollout),
                [
                    {
                        "id": 1,
                        "product_id": 1,
                        "release_id": releases,
                        "channel_id": 3,
                        "salt": "bench",
                        "state": "running",
                        "current_wave": 0,
                        "wave_started_at": now,
                        "gates": {},
                        "waves": [{"share": 1000}, {"share": 10000}],
                        "excluded_hardware": [],
                        "created_by": "bench",
                        "created_at": now,
                        "updated_at": now,
                        "emergency": False,
                    }
                ],
            )
    engine.dispose()
