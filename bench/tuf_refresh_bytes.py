"""Bytes one device downloads in a TUF refresh after a publish, as releases pile up.

For 10, 1,000 and 10,000 releases: a product's repository is filled, a device
(the stock tuf.ngclient.Updater) refreshes, one more release is published, and
the device refreshes again and looks up the new target. Every byte its fetcher
receives in that second round is counted. The floor for comparison is what a
flat, undelegated targets.json listing the same releases would weigh (what the
device would download after each publish without hash-bin delegation).

    python bench/tuf_refresh_bytes.py [--counts 10,1000,10000]

Target (issue 3): under 32 KiB at 1,000 releases.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tuf.api.metadata import Metadata, TargetFile, Targets  # noqa: E402
from tuf.api.serialization.json import JSONSerializer  # noqa: E402
from tuf.ngclient import Updater, Urllib3Fetcher  # noqa: E402

TARGET_KIB = 32


class CountingFetcher(Urllib3Fetcher):
    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0
        self.files: list[str] = []

    def _fetch(self, url: str) -> Iterator[bytes]:
        self.files.append(url.rsplit("/", 1)[-1])
        for chunk in super()._fetch(url):
            self.bytes += len(chunk)
            yield chunk


def target(i: int) -> TargetFile:
    data = f"release {i}".encode()
    version = f"{i // 10000}.{(i // 100) % 100}.{i % 100}"
    return TargetFile(
        length=50 * 1024 * 1024 + i,
        hashes={"sha256": hashlib.sha256(data).hexdigest()},
        path=f"{version}/edge-gw-{version}.bin",
        unrecognized_fields={
            "custom": {
                "product": "edge-gw",
                "version": version,
                "hardware_revisions": ["rev-a", "rev-b"],
                "min_from_version": "1.0.0",
                "channels": ["beta", "stable"],
                "security_fix": False,
            }
        },
    )


def run(count: int, tmp: Path) -> tuple[int, int, list[str]]:
    from tests.live import add_product, live_server
    from upgrade_server.extensions import db
    from upgrade_server.products.models import Product
    from upgrade_server.signing.metadata_store import Change
    from upgrade_server.signing.service import repository_for

    url = f"sqlite:///{tmp / f'bench-{count}.db'}"
    with live_server(url, tmp / f"instance-{count}", tuf_bin_bits=8) as live:
        product_id = add_product(live, "edge-gw")
        with live.app.app_context():
            product = db.session.get(Product, product_id)
            repo = repository_for(db.session, product, live.app.config["SETTINGS"], create=True)
            repo.change_targets([Change(target(i).path, target(i)) for i in range(count)])
            db.session.commit()
            root = repo.file("root", 1).data
        home = tmp / f"device-{count}"
        (home / "metadata").mkdir(parents=True)

        def updater(fetcher: CountingFetcher | None, bootstrap: bytes | None) -> Updater:
            return Updater(
                metadata_dir=str(home / "metadata"),
                metadata_base_url=f"{live.url}/tuf/edge-gw/metadata/",
                target_base_url=f"{live.url}/tuf/edge-gw/targets/",
                target_dir=str(home),
                fetcher=fetcher,
                bootstrap=bootstrap,
            )

        first = updater(None, root)
        first.refresh()
        first.get_targetinfo(target(0).path)  # the device knows the bin of its release
        new = target(count)
        with live.app.app_context():
            product = db.session.get(Product, product_id)
            repo = repository_for(db.session, product, live.app.config["SETTINGS"])
            repo.change_targets([Change(new.path, new)])
            db.session.commit()
        fetcher = CountingFetcher()
        second = updater(fetcher, None)
        second.refresh()
        assert second.get_targetinfo(new.path) is not None
    flat = Metadata(Targets(targets={target(i).path: target(i) for i in range(count + 1)}))
    flat_bytes = len(flat.to_bytes(JSONSerializer(compact=True)))
    return fetcher.bytes, flat_bytes, fetcher.files


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--counts", default="10,1000,10000")
    args = parser.parse_args()
    ok = True
    with tempfile.TemporaryDirectory(prefix="bench-tuf-") as tmp:
        for count in (int(c) for c in args.counts.split(",")):
            got, flat, files = run(count, Path(tmp))
            print(
                f"{count:>6} releases: refresh after a publish downloads {got / 1024:6.1f} KiB "
                f"({', '.join(files)}); a flat targets.json would be {flat / 1024:8.1f} KiB "
                f"= {flat / got:5.1f}x more"
            )
            if count == 1000:
                ok &= got < TARGET_KIB * 1024
    print(f"target: under {TARGET_KIB} KiB at 1,000 releases: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
