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


def _environ(token: str, etag: str) -> dict[str, Any]:
    import io

    body = b'{"current_version":"1.0.0","channel":"stable"}'
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
    return environ


def _call(app: Callable[..., Iterable[bytes]], token: str, etag: str) -> tuple[str, str]:
    """One request as gunicorn makes it; returns (status, ETag)."""
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc: Any = None) -> None:
        seen["status"], seen["headers"] = status, dict(headers)

    result = app(_environ(token, etag), start_response)
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
    etags = {}
    for i in range(WARM_UP):
        token = tokens[i % len(tokens)]
        status, etags[token] = _call(app, token, "")
        assert status.startswith("200"), status
    for i in range(requests):
        token = tokens[i % len(tokens)]
        status, _ = _call(app, token, etags[token] if kind == "304" else "")
        assert status.startswith("304" if kind == "304" else "200"), status


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
