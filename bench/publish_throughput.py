"""Publishing a large artifact through the API, against sha256sum plus a copy.

Starts gunicorn (1 worker) on a scratch SQLite database and local storage,
publishes a 1 GiB artifact with the publisher client (multipart, streamed),
and compares the time with `sha256sum FILE && cp FILE DEST` on the same file
in the same run. A sampler records the peak RSS of the gunicorn processes.

    python bench/publish_throughput.py [--mib 1024]

Targets (issue 3): speed >= 0.5x the floor; peak server memory under 150 MiB.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
MIB = 1024 * 1024


def make_file(path: Path, mib: int) -> None:
    block = os.urandom(MIB)
    with path.open("wb") as f:
        for i in range(mib):
            f.write(i.to_bytes(8, "big") + block[8:])


def floor_seconds(path: Path, tmp: Path) -> float:
    dest = tmp / "copy.bin"
    start = time.perf_counter()
    subprocess.run(["sha256sum", str(path)], check=True, capture_output=True)
    subprocess.run(["cp", str(path), str(dest)], check=True)
    subprocess.run(["sync", str(dest)], check=True)
    seconds = time.perf_counter() - start
    dest.unlink()
    return seconds


class PeakRss:
    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            try:
                procs = [self.root, *self.root.children(recursive=True)]
                self.peak = max(self.peak, *(p.memory_info().rss for p in procs))
            except psutil.Error:
                pass

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=1024)
    args = parser.parse_args()
    from tests.gunicorn_server import seed_publisher
    from tests.moto_server import free_port, wait_for_port
    from upgrade_server.cli.remote import Server

    with tempfile.TemporaryDirectory(prefix="bench-publish-", dir="/tmp") as tmp_name:
        tmp = Path(tmp_name)
        artifact = tmp / "artifact.bin"
        make_file(artifact, args.mib)
        url = f"sqlite:///{tmp / 'bench.db'}"
        instance = tmp / "instance"
        token, product_id = seed_publisher(url, instance)
        port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "UPGRADE_SERVER_INSTANCE_PATH": str(instance),
            "GUNICORN_BIND": f"127.0.0.1:{port}",
            "GUNICORN_WORKERS": "1",
            "GUNICORN_TIMEOUT": "600",
            "GUNICORN_ACCESS_LOG": "/dev/null",
        }
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "wsgi:app"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(port)
            client = Server(f"http://127.0.0.1:{port}", token)
            floor = floor_seconds(artifact, tmp)
            with PeakRss(server.pid) as rss:
                start = time.perf_counter()
                release = client.upload(
                    f"/api/v1/products/{product_id}/releases",
                    {"metadata": '{"version": "1.0.0"}'},
                    artifact,
                    progress=False,
                )
                seconds = time.perf_counter() - start
            assert release["status"] == "published", release
        finally:
            server.terminate()
            server.wait(timeout=30)
            shutil.rmtree(instance, ignore_errors=True)
    ratio = floor / seconds
    peak = rss.peak / MIB
    speed = f"{seconds:.2f} s ({args.mib / seconds:.0f} MiB/s)"
    print(f"publish {args.mib} MiB through the API: {speed}; sha256sum + cp: {floor:.2f} s")
    print(f"ratio {ratio:.2f}x the floor (target >= 0.5x)")
    print(f"peak RSS of the gunicorn processes: {peak:.1f} MiB (target < 150 MiB)")
    ok = ratio >= 0.5 and peak < 150
    print(f"targets: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
