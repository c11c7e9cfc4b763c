"""Update-check throughput and latency against a floor measured in the same run.

For each database (SQLite, and PostgreSQL when reachable): a fleet of 100,000
devices and 1,000 releases; gunicorn with 2 workers; wrk posting update checks
from random devices. The floor is a minimal Flask endpoint answering JSON of
the same size (and 304 to If-None-Match) under the same gunicorn settings.
It also prints SQL statements per update check, p50 latency at 1,000,000
devices over p50 at 10,000 (SQLite), and idle-poll throughput of the exported
timestamp.json through nginx against nginx serving a static file of the same
size.

    python bench/update_check.py [--seconds 10] [--skip-million]

Targets (issue 4): throughput >= 0.7x floor; 304s >= 0.8x; <= 3 SQL statements
per check; p50(1M) / p50(10k) <= 1.2; idle polls >= 0.9x nginx static.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import gunicorn, nginx, wrk
from bench.seed import device_secret, seed

LUA = Path(__file__).resolve().parent / "update_check.lua"
PG_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _answer(url: str, token: str) -> tuple[bytes, str]:
    request = urllib.request.Request(
        f"{url}/api/device/v1/update-check",
        data=b'{"current_version":"1.0.0","channel":"stable"}',
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:
        return response.read(), response.headers["ETag"]


def statements_per_check(db_url: str, instance: Path) -> tuple[int, int]:
    """Statements SQLite itself runs for one update check, counted by its trace
    hook (the check runs its queries on the raw driver, below SQLAlchemy's
    events). Returns (answer not cached yet, answer cached). Reports are
    written behind, one batch a second, not per check."""
    import threading

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from upgrade_server import create_app
    from upgrade_server.config import Settings
    from upgrade_server.extensions import db

    count, counting, me = 0, False, threading.get_ident()
    counts = []

    def trace(statement: str) -> None:
        nonlocal count
        if counting and threading.get_ident() == me:
            count += 1

    def on_connect(dbapi_connection: object, _record: object) -> None:
        dbapi_connection.set_trace_callback(trace)  # type: ignore[attr-defined]

    event.listen(Engine, "connect", on_connect)
    settings = Settings(instance_path=instance, database_url=db_url, report_batch_seconds=3600)
    app = create_app({"SETTINGS": settings})
    client = app.test_client()
    try:
        # The first check opens the kept connection; the second computes a new
        # answer (another version), the third finds it cached.
        for device, version in ((7, "1.0.0"), (8, "0.9.0"), (8, "0.9.0")):
            count, counting = 0, True
            client.post(
                "/api/device/v1/update-check",
                json={"current_version": version, "channel": "stable"},
                headers={"Authorization": f"Bearer {device_secret(device)}"},
            )
            counting = False
            counts.append(count)
    finally:
        event.remove(Engine, "connect", on_connect)
    app.extensions["report_writer"].flush()  # now, while the database is there
    with app.app_context():
        db.engine.dispose()
    return counts[1], counts[2]


def _floor(env: dict[str, str], seconds: int) -> tuple[dict, dict]:
    """wrk against the floor app: (update checks, 304 answers)."""
    with gunicorn("bench.floor_app:app", env) as (url, _):
        _, floor_etag = _answer(url, "x")
        floor = wrk(f"{url}/api/device/v1/update-check", seconds, script=LUA)
        os.environ["BENCH_ETAG"] = floor_etag
        floor_304 = wrk(f"{url}/api/device/v1/update-check", seconds, script=LUA)
    os.environ["BENCH_ETAG"] = ""
    return floor, floor_304


def measure(db_url: str, label: str, instance: Path, seconds: int, tokens: Path) -> dict:
    env = {
        "DATABASE_URL": db_url,
        "UPGRADE_SERVER_INSTANCE_PATH": str(instance),
        "UPGRADE_SERVER_LOG_LEVEL": "WARNING",
        "BENCH_TOKENS": str(tokens),
    }
    with gunicorn("wsgi:app", env) as (url, _):
        body, etag = _answer(url, device_secret(3))
        os.environ["BENCH_TOKENS"] = str(tokens)
        os.environ["BENCH_ETAG"] = ""
        check = wrk(f"{url}/api/device/v1/update-check", seconds, script=LUA)
        os.environ["BENCH_ETAG"] = etag
        not_modified = wrk(f"{url}/api/device/v1/update-check", seconds, script=LUA)
    os.environ["BENCH_ETAG"] = ""
    floor, floor_304 = _floor({"FLOOR_BODY_BYTES": str(len(body))}, seconds)
    print(
        f"{label}: update check {check['rps']:.0f}/s p50 {check['p50']:.2f} ms "
        f"p99 {check['p99']:.2f} ms | floor {floor['rps']:.0f}/s p50 {floor['p50']:.2f} ms "
        f"| ratio {check['rps'] / floor['rps']:.2f}x (target >= 0.7x)"
    )
    print(
        f"{label}: 304 answers {not_modified['rps']:.0f}/s | floor {floor_304['rps']:.0f}/s | "
        f"ratio {not_modified['rps'] / floor_304['rps']:.2f}x (target >= 0.8x)"
    )
    if db_url.startswith("postgresql"):
        # The same floor plus one `SELECT 1` round trip to this PostgreSQL: the
        # most any check that asks the database once can reach on this machine.
        trip, trip_304 = _floor(
            {"FLOOR_BODY_BYTES": str(len(body)), "FLOOR_DATABASE_URL": db_url}, seconds
        )
        print(
            f"{label}: floor + one SELECT 1 round trip {trip['rps']:.0f}/s = "
            f"{trip['rps'] / floor['rps']:.2f}x the floor; 304s {trip_304['rps']:.0f}/s = "
            f"{trip_304['rps'] / floor_304['rps']:.2f}x (the ceiling of a check that asks the "
            "database once)"
        )
    if check["errors"] or not_modified["errors"]:
        print(f"{label}: non-2xx/3xx answers: {check['errors'] + not_modified['errors']:.0f}")
    return {
        "check": check,
        "floor": floor,
        "304": not_modified,
        "floor_304": floor_304,
        "body": body,
    }


def token_file(folder: Path, devices: int, sample: int = 20_000) -> Path:
    path = folder / f"tokens-{devices}.txt"
    chosen = random.sample(range(devices), min(sample, devices))
    path.write_text("\n".join(device_secret(i) for i in chosen) + "\n")
    return path


def postgres_database(name: str) -> str | None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    try:
        admin = create_engine(
            PG_URL.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
    except Exception as exc:
        print(f"PostgreSQL not reachable ({exc.__class__.__name__}): its runs are left out")
        return None
    return make_url(PG_URL).set(database=name).render_as_string(hide_password=False)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--releases", type=int, default=1_000)
    parser.add_argument("--skip-million", action="store_true")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-check-") as tmp_name:
        tmp = Path(tmp_name)
        tokens = token_file(tmp, args.devices)
        sqlite_url = f"sqlite:///{tmp / 'fleet.db'}"
        seed(sqlite_url, args.devices, args.releases)
        uncached, cached = statements_per_check(sqlite_url, tmp / "i")
        print(
            f"SQL statements per update check: {cached}, {uncached} when its answer is not"
            " cached yet (target <= 3)"
        )
        results["sqlite"] = measure(sqlite_url, "SQLite", tmp / "i", args.seconds, tokens)
        pg_url = postgres_database("bench_update_check")
        if pg_url:
            seed(pg_url, args.devices, args.releases)
            results["postgres"] = measure(pg_url, "PostgreSQL", tmp / "i", args.seconds, tokens)
        if not args.skip_million:
            p50 = {}
            for count in (10_000, 1_000_000):
                url = f"sqlite:///{tmp / f'fleet-{count}.db'}"
                seed(url, count, args.releases)
                env = {"DATABASE_URL": url, "UPGRADE_SERVER_INSTANCE_PATH": str(tmp / "i")}
                os.environ["BENCH_TOKENS"] = str(token_file(tmp, count))
                with gunicorn("wsgi:app", env) as (base, _):
                    p50[count] = wrk(
                        f"{base}/api/device/v1/update-check", args.seconds, script=LUA
                    )["p50"]
            print(
                f"p50 at 1,000,000 devices {p50[1_000_000]:.2f} ms / at 10,000 "
                f"{p50[10_000]:.2f} ms = {p50[1_000_000] / p50[10_000]:.2f} (target <= 1.2)"
            )
        # Idle polls: the exported timestamp.json through nginx, against a static file.
        export = tmp / "export" / "gw" / "metadata"
        export.mkdir(parents=True)
        body = json.dumps({"signed": {"_type": "timestamp", "version": 1}}).encode()
        (export / "timestamp.json").write_bytes(body.ljust(520))
        (tmp / "export" / "static.json").write_bytes(b"x" * len(body.ljust(520)))
        with nginx(tmp / "export") as base:
            etag = urllib.request.urlopen(f"{base}/gw/metadata/timestamp.json").headers["ETag"]
            idle = wrk(
                f"{base}/gw/metadata/timestamp.json", args.seconds, headers={"If-None-Match": etag}
            )
            static = wrk(f"{base}/static.json", args.seconds)
        print(
            f"idle polls (conditional GET of timestamp.json via nginx): {idle['rps']:.0f}/s | "
            f"nginx static file {static['rps']:.0f}/s | ratio {idle['rps'] / static['rps']:.2f}x"
            f" (target >= 0.9x): one node carries {idle['rps'] * 1800 / 1e6:.1f}M devices "
            "polling every 30 minutes"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
