"""Peak memory and speed of streaming artifacts into storage.

Streams a 1 GiB file through the local backend and a 256 MiB one through the
S3 backend (multipart, against moto running as its own HTTP server process).
Each backend runs in a fresh child process, so its peak RSS is its own; the
same child storing 1 KiB gives the floor (interpreter plus imports). Speed is
compared with a plain hash-and-copy of the same file measured in the same run.

    python bench/storage_memory.py [--local-mib 1024] [--s3-mib 256]

Targets (issue 2): peak under 100 MiB for both.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
MIB = 1024 * 1024
TARGET_MIB = 100


def make_file(path: Path, mib: int) -> None:
    block = os.urandom(MIB)
    with path.open("wb") as f:
        for i in range(mib):
            # Vary each block so nothing downstream can deduplicate it.
            f.write(i.to_bytes(8, "big") + block[8:])


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(backend: str, path: str, endpoint: str | None) -> None:
    """Runs in its own process: store `path`, print peak RSS and timing as JSON."""
    from upgrade_server.storage.local import LocalStore

    if backend == "local":
        store = LocalStore(Path(tempfile.mkdtemp(prefix="bench-store-")))
    else:
        import boto3

        from tests.moto_server import CREDENTIALS
        from upgrade_server.storage.s3 import S3Store

        client = boto3.client("s3", endpoint_url=endpoint, **CREDENTIALS)
        bucket = f"bench-{os.getpid()}"
        client.create_bucket(Bucket=bucket)
        store = S3Store(client, bucket, part_size=8 * MIB)
    start = time.perf_counter()
    with open(path, "rb") as f:
        stored = store.put(f)
    seconds = time.perf_counter() - start
    print(json.dumps({"peak_mib": peak_rss_mib(), "seconds": seconds, "size": stored.size}))
    if backend == "local":
        shutil.rmtree(store.root)


def run_child(backend: str, path: Path, endpoint: str | None = None) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", backend, str(path), endpoint or ""],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def hash_and_copy_seconds(path: Path) -> float:
    """The floor for speed: read, hash and write the same bytes, nothing else."""
    with tempfile.NamedTemporaryFile(dir=path.parent) as out, path.open("rb") as f:
        start = time.perf_counter()
        digest = hashlib.sha256()
        while chunk := f.read(MIB):
            digest.update(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
        return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--local-mib", type=int, default=1024)
    parser.add_argument("--s3-mib", type=int, default=256)
    args = parser.parse_args()
    from tests.moto_server import moto_process

    ok = True
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        tmpdir = Path(tmp)
        tiny = tmpdir / "tiny.bin"
        tiny.write_bytes(os.urandom(1024))
        big = tmpdir / "local.bin"
        make_file(big, args.local_mib)
        floor_local = run_child("local", tiny)
        local = run_child("local", big)
        copy_s = hash_and_copy_seconds(big)
        rate = args.local_mib / local["seconds"]
        print(
            f"local  {args.local_mib} MiB: peak RSS {local['peak_mib']:.1f} MiB "
            f"(floor {floor_local['peak_mib']:.1f} MiB, growth "
            f"{local['peak_mib'] - floor_local['peak_mib']:+.1f} MiB); "
            f"{rate:.0f} MiB/s = {copy_s / local['seconds']:.2f}x hash+copy floor"
        )
        ok &= local["peak_mib"] < TARGET_MIB
        big.unlink()

        s3_file = tmpdir / "s3.bin"
        make_file(s3_file, args.s3_mib)
        with moto_process() as endpoint:
            floor_s3 = run_child("s3", tiny, endpoint)
            s3 = run_child("s3", s3_file, endpoint)
        print(
            f"s3     {args.s3_mib} MiB: peak RSS {s3['peak_mib']:.1f} MiB "
            f"(floor {floor_s3['peak_mib']:.1f} MiB, growth "
            f"{s3['peak_mib'] - floor_s3['peak_mib']:+.1f} MiB); "
            f"{args.s3_mib / s3['seconds']:.0f} MiB/s to moto over loopback"
        )
        ok &= s3["peak_mib"] < TARGET_MIB
    print(f"target: peak under {TARGET_MIB} MiB for both: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4] or None)
    else:
        sys.exit(main())
