"""Instructions per update check against the floor, counted by valgrind's callgrind.

Wall-clock ratios drift ±10% with whatever else the machine runs; the number of
instructions a request costs does not. Each app (the server's `wsgi:app` and
the floor, `bench/floor_app.py`; and the server again with the newest release
under a rollout) is called in-process through its WSGI callable,
exactly what gunicorn calls, once with N1 and once with N2 requests under
callgrind; (I(N2) - I(N1)) / (N2 - N1) is the cost of one request, start-up and
warm-up cancelled. A ratio is floor / server, so higher is better, as in
`update_check.py`. SQLite only: a PostgreSQL round trip is spent in the server
process, which callgrind does not see.

Then, on a fleet where every device runs the newest release, the hawkBit DDI
base poll beside the native update check (both with nothing to install):
DDI / native is the poll's cost over the check's (issue 18: at most 1.0).

    python bench/update_check_instructions.py [--devices 10000] [--releases 200]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WARM_UP = 200
COUNTS = (200, 1200)
KINDS = ("check", "304")


def _environ(token: str, etag: str, kind: str = "check", serial: str = "") -> dict[str, Any]:
    import io

    version = os.environ.get("BENCH_VERSION", "1.0.0") if kind == "current" else "1.0.0"
    body = b'{"current_version":"%s","channel":"stable"}' % version.encode()
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/api/device/v1/update-check",
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "bench",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_AUTHORIZATION": f"Bearer {token}",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if etag:
        environ["HTTP_IF_NONE_MATCH"] = etag
    if kind == "ddi":  # the base poll: a GET with the device's TargetToken
        environ.update(
            REQUEST_METHOD="GET",
            PATH_INFO=f"/bench/controller/v1/{serial}",
            CONTENT_LENGTH="",
            CONTENT_TYPE="",
            HTTP_AUTHORIZATION=f"TargetToken {token}",
            HTTP_HOST="bench",
        )
        environ["wsgi.input"] = io.BytesIO(b"")
    return environ


def _call(
    app: Callable[..., Iterable[bytes]],
    token: str,
    etag: str,
    kind: str = "check",
    serial: str = "",
) -> tuple[str, str]:
    """One request as gunicorn makes it; returns (status, ETag)."""
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc: Any = None) -> None:
        seen["status"], seen["headers"] = status, dict(headers)

    result = app(_environ(token, etag, kind, serial), start_response)
    b"".join(result)
    close = getattr(result, "close", None)
    if close is not None:
        close()
    return seen["status"], seen["headers"].get("ETag", "")


def child(target: str, kind: str, requests: int) -> None:
    """Run inside callgrind: build the app, warm it up, make `requests` calls."""
    from bench.seed import device_secret

    if target in ("server", "rollout"):
        from wsgi import app
    else:
        from bench.floor_app import app
    tokens = [device_secret(i) for i in range(20)]
    serials = [f"SN-{i:08d}" for i in range(20)]
    expected = {"304": "304", "current": "204"}.get(kind, "200")
    etags = {}
    for i in range(WARM_UP):
        token = tokens[i % len(tokens)]
        status, etags[token] = _call(app, token, "", kind, serials[i % len(tokens)])
        assert status.startswith("204" if kind == "current" else "200"), status
    for i in range(requests):
        token = tokens[i % len(tokens)]
        etag = etags[token] if kind == "304" else ""
        status, _ = _call(app, token, etag, kind, serials[i % len(tokens)])
        assert status.startswith(expected), status


def instructions(target: str, kind: str, requests: int, env: dict[str, str], out: Path) -> int:
    out_file = out / f"callgrind.{target}.{kind}.{requests}"
    subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out_file}",
            sys.executable,
            __file__,
            "--child",
            target,
            kind,
            str(requests),
        ],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    totals = re.search(r"^(?:summary|totals): (\d+)", out_file.read_text(), re.MULTILINE)
    assert totals, f"no totals in {out_file}"
    return int(totals.group(1))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--releases", type=int, default=200)
    parser.add_argument("--child", nargs=3, metavar=("TARGET", "KIND", "REQUESTS"))
    parser.add_argument("--answer-size", action="store_true")
    args = parser.parse_args()
    if args.answer_size:
        from bench.seed import device_secret
        from wsgi import app

        body = b"".join(app(_environ(device_secret(3), ""), lambda *_: None))
        print(len(body))
        return 0
    if args.child:
        target, kind, requests = args.child
        child(target, kind, int(requests))
        return 0
    from bench.seed import seed

    with tempfile.TemporaryDirectory(prefix="bench-instr-") as tmp_name:
        tmp = Path(tmp_name)
        url = f"sqlite:///{tmp / 'fleet.db'}"
        seed(url, args.devices, args.releases)
        env = {
            **os.environ,
            "PYTHONHASHSEED": "0",
            "DATABASE_URL": url,
            "UPGRADE_SERVER_INSTANCE_PATH": str(tmp / "i"),
            "UPGRADE_SERVER_LOG_LEVEL": "WARNING",
            # Nothing in the background: only the requests are counted.
            "UPGRADE_SERVER_REPORT_BATCH_SECONDS": "3600",
            "UPGRADE_SERVER_TUF_UPKEEP_SECONDS": "0",
            "UPGRADE_SERVER_NOTIFY_INTERVAL_SECONDS": "0",
            "UPGRADE_SERVER_STAGING_CLEANUP_SECONDS": "0",
            "UPGRADE_SERVER_ROLLOUT_EVALUATE_SECONDS": "0",
        }
        # The floor answers JSON of the server's size.
        env["FLOOR_BODY_BYTES"] = str(_answer_size(env))
        # The same fleet with its newest release under a rollout (first wave 10 %).
        rollout_url = f"sqlite:///{tmp / 'fleet-rollout.db'}"
        seed(rollout_url, args.devices, args.releases, rollout=True)
        envs = {"server": env, "floor": env, "rollout": {**env, "DATABASE_URL": rollout_url}}
        per_request: dict[tuple[str, str], float] = {}
        for kind in KINDS:
            for target in ("server", "floor", "rollout"):
                low, high = (instructions(target, kind, n, envs[target], tmp) for n in COUNTS)
                per_request[target, kind] = (high - low) / (COUNTS[1] - COUNTS[0])
        figures = {}
        for kind in KINDS:
            server, floor = per_request["server", kind], per_request["floor", kind]
            rolled = per_request["rollout", kind]
            figures[kind] = {
                "server": round(server),
                "floor": round(floor),
                "rollout": round(rolled),
            }
            label = "update check" if kind == "check" else "304 answers"
            print(
                f"SQLite {label}: {server:,.0f} instructions per request | floor {floor:,.0f}"
                f" | ratio {floor / server:.2f}x | under a rollout {rolled:,.0f}"
                f" = {floor / rolled:.2f}x"
            )
        # Every device on the newest release: the DDI poll beside the native check.
        from bench.update_check import up_to_date

        current_url = f"sqlite:///{tmp / 'fleet-current.db'}"
        seed(current_url, args.devices, args.releases)
        current_env = {**env, "DATABASE_URL": current_url, "BENCH_VERSION": up_to_date(current_url)}
        cost = {}
        for kind in ("current", "ddi"):
            low, high = (instructions("server", kind, n, current_env, tmp) for n in COUNTS)
            cost[kind] = (high - low) / (COUNTS[1] - COUNTS[0])
        print(
            f"SQLite, up-to-date devices: DDI base poll {cost['ddi']:,.0f} instructions per"
            f" request | native update check {cost['current']:,.0f} | DDI / native"
            f" {cost['ddi'] / cost['current']:.2f} (target <= 1.0)"
        )
        figures["ddi"] = {"poll": round(cost["ddi"]), "native": round(cost["current"])}
        print(json.dumps(figures))
    return 0


def _answer_size(env: dict[str, str]) -> int:
    """The size of the server's answer, from a process with the bench's settings."""
    run = subprocess.run(
        [sys.executable, __file__, "--answer-size"],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return int(run.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    sys.exit(main())
