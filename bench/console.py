"""Server time of the staff console's busiest pages on a large fleet.

For each database (SQLite, and PostgreSQL when BENCH_POSTGRES_URL or the
local default is reachable): 100,000 devices and 1,000 releases (bench/seed.py)
spread over 20 organisations, most seen within the last days, on a few
versions; an administrator logged in through the console's form. Then, in
process through the app's WSGI callable (the Flask test client, no network),
each page N times: the overview (GET /console/), the device list's first
page, a filtered page (upgrade coverage ending within 30 days, not seen for a
week), a page sorted by version, a serial search, and (shown, not a target) a
deep page: page 1,000 in last-seen order. Printed per page: median and p95 milliseconds, SQL
statements per request (counted with a SQLAlchemy event), and the ratio to the
floor: the console's login page rendered in the same run (the same stack,
templates and headers, no query).

    python bench/console.py [--devices 100000] [--releases 1000] [--repeat 20]

Target (issue 17): the overview and the device list under 300 ms server time
each, with a bounded number of SQL statements (no query per row).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.seed import seed
from bench.update_check import postgres_database

TARGET_MS = 300.0
ORGANISATIONS = 20
EMAIL = "bench-admin@vendor.test"
PASSWORD = "correct horse battery"
PAGES = (
    ("overview", "/console/"),
    ("devices: first page", "/console/devices"),
    ("devices: filtered", "/console/devices?coverage=ending&silent=7"),
    ("devices: by version", "/console/devices?sort=version&order=desc"),
    ("devices: serial search", "/console/devices?q=sn-0004999"),
)
# Shown, not held to the target: offset paging sorts past every device
# before the page, so a page deep in an unindexed order costs more.
INFORMATIONAL = (("devices: seen, page 1000", "/console/devices?sort=seen&page=1000"),)
FLOOR = ("floor: login page", "/console/login")


def enrich(url: str, devices: int) -> None:
    """What the console shows beyond bench/seed.py: organisations, last-seen
    times, versions, channels, and an administrator with a password."""
    from sqlalchemy import create_engine, insert, text

    from upgrade_server.accounts.models import User
    from upgrade_server.accounts.service import hash_password
    from upgrade_server.organisations.models import Organisation

    now = datetime.now(UTC)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            insert(Organisation),
            [
                {
                    "id": i,
                    "slug": f"customer-{i}",
                    "name": f"Customer {i:02d}",
                    "timezone": "Asia/Shanghai",  # the seeded coverage's zone
                    "region": "beijing" if i % 3 == 0 else "other",
                    "created_at": now,
                }
                for i in range(2, ORGANISATIONS + 1)
            ],
        )
        # Spread with the id, the same every run: organisation, version,
        # channel; most devices seen within the last days, some long silent.
        conn.execute(
            text(
                "UPDATE devices SET organisation_id = 1 + id % :orgs,"
                " current_version = CASE id % 4 WHEN 0 THEN '1.0.0' WHEN 1 THEN '1.9.99'"
                " WHEN 2 THEN '1.10.0' ELSE NULL END,"
                " channel = CASE WHEN id % 10 = 0 THEN 'beta' ELSE 'stable' END,"
                " last_seen_at = CASE WHEN id % 20 = 0 THEN NULL ELSE :now END"
            ),
            {"orgs": ORGANISATIONS, "now": now},
        )
        # Last-seen times spread over 60 days in a few statements.
        for k in range(60):
            conn.execute(
                text("UPDATE devices SET last_seen_at = :at WHERE id % 60 = :k AND id % 20 != 0"),
                {"at": now - timedelta(days=k, minutes=k * 7), "k": k},
            )
        conn.execute(
            insert(User),
            [
                {
                    "email": EMAIL,
                    "name": "Bench admin",
                    "role": "admin",
                    "organisation_id": None,
                    "password_hash": hash_password(PASSWORD),
                    "active": True,
                    "created_at": now,
                }
            ],
        )
        if engine.dialect.name == "postgresql":
            conn.execute(text("ANALYZE"))
    engine.dispose()


def _app(url: str, instance: Path) -> Any:
    from upgrade_server import create_app
    from upgrade_server.config import Settings

    settings = Settings(
        instance_path=instance,
        database_url=url,
        secret_key="bench-secret-key",  # noqa: S106  (a throwaway app)
        log_level="WARNING",
        tuf_bin_bits=4,
    )
    return create_app({"SETTINGS": settings})


def _login(client: Any) -> None:
    html = client.get("/console/login?lang=en").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert token is not None
    r = client.post(
        "/console/login", data={"email": EMAIL, "password": PASSWORD, "csrf_token": token[1]}
    )
    assert r.status_code == 302, r.get_data(as_text=True)[:500]


def _measure(
    get: Callable[[str], Any], counter: list[int], path: str, repeat: int
) -> dict[str, float]:
    for _ in range(3):  # warm caches: templates, compiled statements, pages
        assert get(path).status_code == 200, path
    times, statements = [], []
    for _ in range(repeat):
        counter[0] = 0
        started = time.perf_counter()
        r = get(path)
        times.append((time.perf_counter() - started) * 1000)
        statements.append(counter[0])
        assert r.status_code == 200, (path, r.status_code)
    times.sort()
    return {
        "median": statistics.median(times),
        "p95": times[min(len(times) - 1, round(0.95 * (len(times) - 1)))],
        "statements": max(statements),
    }


def run(name: str, url: str, devices: int, releases: int, repeat: int) -> bool:
    from sqlalchemy import event

    from upgrade_server.extensions import db

    started = time.perf_counter()
    seed(url, devices, releases)
    enrich(url, devices)
    print(
        f"{name}: seeded {devices:,} devices, {releases:,} releases in "
        f"{time.perf_counter() - started:.0f} s"
    )
    with tempfile.TemporaryDirectory(prefix="bench-console-") as instance:
        app = _app(url, Path(instance))
        counter = [0]
        with app.app_context():
            engine = db.engine

        def count(*_args: Any) -> None:
            counter[0] += 1

        event.listen(engine, "before_cursor_execute", count)
        client = app.test_client()
        _login(client)
        floor = _measure(client.get, counter, FLOOR[1], repeat)
        results = [
            (label, _measure(client.get, counter, path, repeat))
            for label, path in (*PAGES, *INFORMATIONAL)
        ]
        event.remove(engine, "before_cursor_execute", count)
    ok = True
    print(f"{'page':28} {'median ms':>10} {'p95 ms':>8} {'statements':>10} {'x floor':>8}")
    for label, r in [(FLOOR[0], floor), *results]:
        held = label in dict(PAGES)
        over = held and r["median"] > TARGET_MS
        ok = ok and not over
        print(
            f"{label:28} {r['median']:10.1f} {r['p95']:8.1f} {r['statements']:10d}"
            f" {r['median'] / floor['median']:8.1f}{'  OVER TARGET' if over else ''}"
            f"{'  (not a target)' if label in dict(INFORMATIONAL) else ''}"
        )
    print(f"{name}: target median < {TARGET_MS:.0f} ms per page: {'met' if ok else 'MISSED'}\n")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--releases", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    ok = True
    with tempfile.TemporaryDirectory(prefix="bench-console-db-") as tmp:
        ok = run("SQLite", f"sqlite:///{tmp}/fleet.db", args.devices, args.releases, args.repeat)
    pg = postgres_database(os.environ.get("BENCH_CONSOLE_DATABASE", "bench_console"))
    if pg is not None:
        url = pg.replace("postgresql://", "postgresql+psycopg://")
        ok = run("PostgreSQL", url, args.devices, args.releases, args.repeat) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
