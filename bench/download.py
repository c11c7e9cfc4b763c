"""Artifact download throughput through the device API against nginx.

A 1 GiB artifact is stored in the local backend; gunicorn (2 workers, the
project's config) serves it to a device token on /api/device/v1 (sendfile via
the WSGI file wrapper), and nginx serves the very same file in the same run.
curl downloads each three times; the best run counts. A sampler records the
peak RSS of the gunicorn processes.

    python bench/download.py [--mib 1024]

Target (issue 4): >= 0.9x nginx.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, insert

from bench.common import gunicorn, nginx
from bench.publish_throughput import PeakRss, make_file
from bench.seed import device_secret, seed
from upgrade_server.releases.models import Release, ReleaseChannel
from upgrade_server.releases.versions import sort_key
from upgrade_server.storage.local import LocalStore

MIB = 1024 * 1024


def curl_seconds(url: str, headers: dict[str, str] | None = None, runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        command = ["curl", "-s", "-f", "-o", "/dev/null", "-w", "%{time_total}"]
        for name, value in (headers or {}).items():
            command += ["-H", f"{name}: {value}"]
        out = subprocess.run([*command, url], check=True, capture_output=True, text=True)
        best = min(best, float(out.stdout))
    return best


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=1024)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-download-", dir="/tmp") as tmp_name:
        tmp = Path(tmp_name)
        instance = tmp / "instance"
        artifact = tmp / "artifact.bin"
        make_file(artifact, args.mib)
        store = LocalStore(instance / "artifacts")
        with artifact.open("rb") as f:
            stored = store.put(f)
        artifact.unlink()
        url = f"sqlite:///{tmp / 'bench.db'}"
        seed(url, devices=1, releases=0)
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(
                insert(Release),
                [
                    {
                        "id": 1,
                        "product_id": 1,
                        "version": "2.0.0",
                        "version_key": sort_key("2.0.0"),
                        "status": "published",
                        "artifact_sha256": stored.sha256,
                        "artifact_size": stored.size,
                        "filename": "fw.bin",
                        "target_path": "2.0.0/fw.bin",
                        "security_fix": False,
                        "notes": {},
                        "guidance": {},
                        "hardware_revisions": ["rev-a", "rev-b"],
                        "hardware_key": ",rev-a,rev-b,",
                        "requirements": [],
                        "parameters": [],
                        "created_at": datetime.now(UTC),
                        "created_by": "bench",
                        "downloads": 0,
                    }
                ],
            )
            conn.execute(
                insert(ReleaseChannel),
                [{"release_id": 1, "channel_id": 3, "added_at": datetime.now(UTC)}],
            )
        engine.dispose()
        env = {
            "DATABASE_URL": url,
            "UPGRADE_SERVER_INSTANCE_PATH": str(instance),
            "GUNICORN_TIMEOUT": "600",
        }
        headers = {"Authorization": f"Bearer {device_secret(0)}"}
        with gunicorn("wsgi:app", env) as (base, pid), PeakRss(pid) as rss:
            app_s = curl_seconds(f"{base}/api/device/v1/releases/1/artifact", headers)
        path = store.local_path(stored.sha256)
        assert path is not None
        with nginx(path.parent) as base:
            nginx_s = curl_seconds(f"{base}/{path.name}")
    ratio = nginx_s / app_s
    print(
        f"download {args.mib} MiB: device API {args.mib / app_s:.0f} MiB/s ({app_s:.2f} s) | "
        f"nginx {args.mib / nginx_s:.0f} MiB/s ({nginx_s:.2f} s) | ratio {ratio:.2f}x "
        "(target >= 0.9x)"
    )
    print(f"peak RSS of the gunicorn processes: {rss.peak / MIB:.1f} MiB")
    return 0 if ratio >= 0.9 else 1


if __name__ == "__main__":
    sys.exit(main())
