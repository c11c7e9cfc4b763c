"""Update-check throughput and latency against a floor measured in the same run.

For each database (SQLite, and PostgreSQL when reachable): a fleet of 100,000
devices and 1,000 releases; gunicorn with 2 workers; wrk posting update checks
from random devices. The floor is a minimal Flask endpoint answering JSON of
the same size (and 304 to If-None-Match) under the same gunicorn settings.
It also prints SQL statements per update check, p50 latency at 1,000,000
devices over p50 at 10,000 (SQLite), and idle-poll throughput of the exported
timestamp.json through nginx against nginx serving a static file of the same
size. And the hawkBit DDI base poll of an up-to-date device beside the native
update check of an up-to-date device, against the floor, in the same run.

    python bench/update_check.py [--seconds 5] [--rounds 3] [--skip-million]

Targets (issue 4): throughput >= 0.7x floor; 304s >= 0.8x; <= 3 SQL statements
per check; p50(1M) / p50(10k) <= 1.2; idle polls >= 0.9x nginx static;
(issue 18) an up-to-date device's DDI poll costs no more than its native check.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import urllib.request
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import gunicorn, nginx, wrk
from bench.seed import device_secret, seed

LUA = Path(__file__).resolve().parent / "update_check.lua"
LUA_CURRENT = Path(__file__).resolve().parent / "update_check_current.lua"
LUA_DDI = Path(__file__).resolve().parent / "ddi_poll.lua"
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


def _wrk(url: str, etag: str, seconds: int) -> dict[str, float]:
    """wrk posting update checks (conditional ones when `etag` is given)."""
    os.environ["BENCH_ETAG"] = etag
    try:
        return wrk(f"{url}/api/device/v1/update-check", seconds, script=LUA)
    finally:
        os.environ["BENCH_ETAG"] = ""


def measure(
    db_url: str,
    label: str,
    instance: Path,
    seconds: int,
    tokens: Path,
    rounds: int,
    rollout_url: str | None = None,
) -> None:
    """The server, the floor (and on PostgreSQL the floor plus one round trip),
    all up at once and measured in turn, `rounds` times: a ratio compares runs
    seconds apart, so the machine's drift (±10% here) mostly cancels; each
    ratio printed is the median of the rounds' ratios, with their range."""
    env = {
        "DATABASE_URL": db_url,
        "UPGRADE_SERVER_INSTANCE_PATH": str(instance),
        "UPGRADE_SERVER_LOG_LEVEL": "WARNING",
        "BENCH_TOKENS": str(tokens),
    }
    os.environ["BENCH_TOKENS"] = str(tokens)
    with ExitStack() as stack:
        url, _ = stack.enter_context(gunicorn("wsgi:app", env))
        body, etag = _answer(url, device_secret(3))
        servers = {"server": (url, etag)}
        if rollout_url:
            # The same fleet with the newest release under a rollout (10 %).
            rolled = stack.enter_context(gunicorn("wsgi:app", {**env, "DATABASE_URL": rollout_url}))
            servers["rollout"] = (rolled[0], _answer(rolled[0], device_secret(3))[1])
        floor_env = {"FLOOR_BODY_BYTES": str(len(body))}
        if db_url.startswith("postgresql"):
            # The same floor plus one `SELECT 1` round trip to this PostgreSQL:
            # the most any check that asks the database once can reach here.
            trip_env = {**floor_env, "FLOOR_DATABASE_URL": db_url}
            servers["trip"] = stack.enter_context(gunicorn("bench.floor_app:app", trip_env))
        servers["floor"] = stack.enter_context(gunicorn("bench.floor_app:app", floor_env))
        for name in ("floor", "trip"):
            if name in servers:
                floor_url = servers[name][0]
                servers[name] = (floor_url, _answer(floor_url, "x")[1])
        runs: dict[tuple[str, str], list[dict[str, float]]] = {}
        for _ in range(rounds):
            for kind in ("check", "304"):
                for name, (base, tag) in servers.items():
                    run = _wrk(base, tag if kind == "304" else "", seconds)
                    runs.setdefault((name, kind), []).append(run)

    def rps(name: str, kind: str) -> float:
        return statistics.median([r["rps"] for r in runs[name, kind]])

    def ratio(name: str, kind: str) -> str:
        pairs = zip(runs[name, kind], runs["floor", kind], strict=True)
        each = [a["rps"] / b["rps"] for a, b in pairs]
        return f"{statistics.median(each):.2f}x (rounds {min(each):.2f}-{max(each):.2f})"

    check = {k: statistics.median([r[k] for r in runs["server", "check"]]) for k in ("p50", "p99")}
    floor_p50 = statistics.median([r["p50"] for r in runs["floor", "check"]])
    print(
        f"{label}: update check {rps('server', 'check'):.0f}/s p50 {check['p50']:.2f} ms "
        f"p99 {check['p99']:.2f} ms | floor {rps('floor', 'check'):.0f}/s p50 {floor_p50:.2f} "
        f"ms | ratio {ratio('server', 'check')} (target >= 0.7x)"
    )
    print(
        f"{label}: 304 answers {rps('server', '304'):.0f}/s | floor {rps('floor', '304'):.0f}/s"
        f" | ratio {ratio('server', '304')} (target >= 0.8x)"
    )
    if "rollout" in servers:
        print(
            f"{label}: under a rollout (newest release, first wave 10 %): update check"
            f" {rps('rollout', 'check'):.0f}/s = {ratio('rollout', 'check')}; 304s"
            f" {rps('rollout', '304'):.0f}/s = {ratio('rollout', '304')} (target >= 0.8x)"
        )
    if "trip" in servers:
        print(
            f"{label}: floor + one SELECT 1 round trip {rps('trip', 'check'):.0f}/s = "
            f"{ratio('trip', 'check')}; 304s {rps('trip', '304'):.0f}/s = {ratio('trip', '304')}"
            " (the ceiling of any check that asks the database once)"
        )
    errors = sum(r["errors"] for kind in ("check", "304") for r in runs["server", kind])
    if errors:
        print(f"{label}: non-2xx/3xx answers: {errors:.0f}")


def up_to_date(db_url: str) -> str:
    """Every device of the seeded fleet on the newest release, with attributes
    sent (as a hawkBit device that polls with nothing to do); the version."""
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    with engine.begin() as conn:
        newest = conn.execute(
            text("SELECT version FROM releases ORDER BY version_key DESC LIMIT 1")
        ).scalar_one()
        conn.execute(
            text("UPDATE devices SET current_version = :v, inventory = :i"),
            {"v": newest, "i": '{"MAC": "00:00:5e:00:53:01"}'},
        )
    engine.dispose()
    return str(newest)


def measure_ddi(
    db_url: str, label: str, instance: Path, seconds: int, tokens: Path, rounds: int
) -> None:
    """The DDI base poll and the native update check of up-to-date devices,
    and the floor (a GET answering JSON of the poll's size), measured in turn."""
    version = up_to_date(db_url)
    targets = tokens.with_suffix(".ddi")
    numbers = [int(line.rsplit("-", 1)[1]) for line in tokens.read_text().split()]
    targets.write_text("".join(f"SN-{i:08d} {device_secret(i)}\n" for i in numbers))
    env = {
        "DATABASE_URL": db_url,
        "UPGRADE_SERVER_INSTANCE_PATH": str(instance),
        "UPGRADE_SERVER_LOG_LEVEL": "WARNING",
    }
    os.environ.update(
        BENCH_TOKENS=str(tokens), BENCH_DDI_TARGETS=str(targets), BENCH_VERSION=version
    )
    with ExitStack() as stack:
        url, _ = stack.enter_context(gunicorn("wsgi:app", env))
        request = urllib.request.Request(
            f"{url}/bench/controller/v1/SN-{numbers[0]:08d}",
            headers={"Authorization": f"TargetToken {device_secret(numbers[0])}"},
        )
        with urllib.request.urlopen(request) as response:
            poll = response.read()
        assert b"deploymentBase" not in poll, poll
        floor_env = {"FLOOR_BODY_BYTES": str(len(poll))}
        if db_url.startswith("postgresql"):
            floor_env["FLOOR_DATABASE_URL"] = db_url
        floor, _ = stack.enter_context(gunicorn("bench.floor_app:app", floor_env))
        kinds = {
            "ddi": (url, LUA_DDI),
            "native": (f"{url}/api/device/v1/update-check", LUA_CURRENT),
            "floor": (f"{floor}/bench/controller/v1/x", None),
        }
        runs: dict[str, list[dict[str, float]]] = {}
        for _ in range(rounds):
            for kind, (target, script) in kinds.items():
                runs.setdefault(kind, []).append(wrk(target, seconds, script=script))

    def rps(kind: str) -> float:
        return statistics.median([r["rps"] for r in runs[kind]])

    def ratio(a: str, b: str) -> str:
        each = [x["rps"] / y["rps"] for x, y in zip(runs[a], runs[b], strict=True)]
        return f"{statistics.median(each):.2f}x (rounds {min(each):.2f}-{max(each):.2f})"

    floor_kind = "floor + one SELECT 1" if "FLOOR_DATABASE_URL" in floor_env else "floor"
    print(
        f"{label}: up-to-date devices ({version}): DDI base poll {rps('ddi'):.0f}/s = "
        f"{ratio('ddi', 'floor')} of the {floor_kind} ({rps('floor'):.0f}/s, {len(poll)} B); "
        f"native update check {rps('native'):.0f}/s = {ratio('native', 'floor')}; "
        f"DDI / native {ratio('ddi', 'native')} (target >= 1.0x, within the machine's drift)"
    )
    errors = sum(r["errors"] for kind in ("ddi", "native") for r in runs[kind])
    if errors:
        print(f"{label}: non-2xx/3xx answers: {errors:.0f}")


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
    parser.add_argument("--seconds", type=int, default=5, help="per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="server/floor runs in turn")
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--releases", type=int, default=1_000)
    parser.add_argument("--skip-million", action="store_true")
    parser.add_argument(
        "--only-ddi", action="store_true", help="only the DDI poll beside the native check"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-check-") as tmp_name:
        tmp = Path(tmp_name)
        tokens = token_file(tmp, args.devices)
        sqlite_url = f"sqlite:///{tmp / 'fleet.db'}"
        seed(sqlite_url, args.devices, args.releases)
        if args.only_ddi:
            measure_ddi(sqlite_url, "SQLite", tmp / "i", args.seconds, tokens, args.rounds)
            pg_url = postgres_database("bench_update_check")
            if pg_url:
                seed(pg_url, args.devices, args.releases)
                measure_ddi(pg_url, "PostgreSQL", tmp / "i", args.seconds, tokens, args.rounds)
            return 0
        uncached, cached = statements_per_check(sqlite_url, tmp / "i")
        print(
            f"SQL statements per update check: {cached}, {uncached} when its answer is not"
            " cached yet (target <= 3)"
        )
        rollout_url = f"sqlite:///{tmp / 'fleet-rollout.db'}"
        seed(rollout_url, args.devices, args.releases, rollout=True)
        uncached, cached = statements_per_check(rollout_url, tmp / "i")
        print(
            f"under a rollout: {cached}, {uncached} when its answer and the rollout are not"
            " cached yet (target <= 2)"
        )
        measure(sqlite_url, "SQLite", tmp / "i", args.seconds, tokens, args.rounds, rollout_url)
        measure_ddi(sqlite_url, "SQLite", tmp / "i", args.seconds, tokens, args.rounds)
        pg_url = postgres_database("bench_update_check")
        if pg_url:
            seed(pg_url, args.devices, args.releases)
            measure(pg_url, "PostgreSQL", tmp / "i", args.seconds, tokens, args.rounds)
            measure_ddi(pg_url, "PostgreSQL", tmp / "i", args.seconds, tokens, args.rounds)
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
