"""The stock python-tuf client (tuf.ngclient.Updater), as a device would use it."""

from __future__ import annotations

from pathlib import Path

from tuf.ngclient import Updater


class Device:
    """A device's TUF state: a trusted root and what it downloaded since."""

    def __init__(self, base_url: str, product: str, root: bytes, home: Path) -> None:
        self.metadata_url = f"{base_url}/tuf/{product}/metadata/"
        self.targets_url = f"{base_url}/tuf/{product}/targets/"
        self.metadata_dir = home / "metadata"
        self.target_dir = home / "targets"
        self.metadata_dir.mkdir(parents=True, exist_ok=True)
        self.target_dir.mkdir(parents=True, exist_ok=True)
        self._bootstrap: bytes | None = root

    def updater(self) -> Updater:
        # metadata_url may be pointed at a static export after construction.
        updater = Updater(
            metadata_dir=str(self.metadata_dir),
            metadata_base_url=self.metadata_url,
            target_dir=str(self.target_dir),
            target_base_url=self.targets_url,
            bootstrap=self._bootstrap,
        )
        self._bootstrap = None  # afterwards the client trusts what it verified
        return updater

    def refresh(self) -> Updater:
        updater = self.updater()
        updater.refresh()
        return updater

    def fetch(self, target_path: str) -> bytes:
        updater = self.refresh()
        info = updater.get_targetinfo(target_path)
        if info is None:
            raise LookupError(f"{target_path} is not in the signed metadata")
        path = updater.download_target(info)
        return Path(path).read_bytes()

    def custom(self, target_path: str) -> dict | None:
        info = self.refresh().get_targetinfo(target_path)
        return None if info is None else info.custom
