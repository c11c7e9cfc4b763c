"""What metrics add to one update check, in process (no HTTP, no gunicorn).

The app's WSGI callable is called with a prepared environ (the demo's device,
SQLite, reports written behind), alternately with metrics on (the request
metrics' wrapper and the answer's count) and off (the same app's inner
callable with recording off: what an app without a token runs). CPU time of
this process, so other load on the machine weighs less; the median of rounds.
Once with samples in memory (one process), once in a multi-process folder
(gunicorn's mode).

    python bench/metrics_overhead.py [--rounds 15] [--calls 2000]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECK = "/api/device/v1/update-check"


def timed(work: object, calls: int) -> float:
    """CPU microseconds a call."""
    return timeit.Timer(work, timer=time.process_time).timeit(calls) / calls * 1e6  # type: ignore[arg-type]


def measure(rounds: int, calls: int) -> None:
    sys.path.insert(0, str(ROOT))
    for name in ("TUF_UPKEEP", "NOTIFY_INTERVAL", "STAGING_CLEANUP"):
        os.environ[f"UPGRADE_SERVER_{name}_SECONDS"] = "0"
    from upgrade_server import create_app, metrics
    from upgrade_server.cli.demo import load_demo
    from upgrade_server.config import Settings
    from upgrade_server.migrate import upgrade

    instance = Path(tempfile.mkdtemp(prefix="metrics-bench-"))
    url = f"sqlite:///{instance / 'bench.db'}"
    upgrade(url)
    settings = Settings(
        instance_path=instance,
        database_url=url,
        report_batch_seconds=3600,
        log_level="WARNING",
        metrics_token="bench-" + "t" * 32,
    )
    app = create_app({"SETTINGS": settings})
    with app.app_context():
        device = load_demo()["device DEMO-0001"]
    body = json.dumps({"current_version": "0.9.0"}).encode()
    base = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": CHECK,
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_AUTHORIZATION": f"Bearer {device}",
        "HTTP_X_REQUEST_ID": "bench",
        "HTTP_HOST": "localhost",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
    }
    headers: dict[str, str] = {}

    def start_response(line: str, sent: list[tuple[str, str]], exc_info: object = None) -> None:
        headers.update(sent)

    def call(wsgi: object, extra: dict[str, str]) -> None:
        environ = {**base, **extra, "wsgi.input": io.BytesIO(body)}
        b"".join(wsgi(environ, start_response))  # type: ignore[operator]

    on = app.wsgi_app
    inner, instruments = on.app, metrics._on  # type: ignore[attr-defined]
    call(on, {})
    mode = "multi-process folder" if os.environ.get("PROMETHEUS_MULTIPROC_DIR") else "in memory"
    for label, extra in (("200 offered", {}), ("304", {"HTTP_IF_NONE_MATCH": headers["ETag"]})):
        off, on_ = [], []
        for _ in range(rounds):  # alternately, so that drift weighs on both
            metrics._on = None
            off.append(timed(lambda extra=extra: call(inner, extra), calls))
            metrics._on = instruments
            on_.append(timed(lambda extra=extra: call(on, extra), calls))
        o, n = statistics.median(off), statistics.median(on_)
        print(f"{mode:20} {label:11}: off {o:6.2f} us, on {n:6.2f} us: +{n - o:5.2f} us a check")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        measure(args.rounds, args.calls)
        return
    argv = [sys.executable, __file__, "--child", f"--rounds={args.rounds}", f"--calls={args.calls}"]
    subprocess.run(argv, check=True)
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(argv, check=True, env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": folder})


if __name__ == "__main__":
    main()
