"""The metadata of a product's TUF repository as stored: its value types, reading
the newest metadata of each role, and signing (online keys) or queueing (offline
keys) a new version of one, with the snapshot and timestamp that follow. The
operations on a repository build on this (repository.py)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from securesystemslib.signer import Signer, SSlibKey
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from tuf.api.metadata import (
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    SuccinctRoles,
    TargetFile,
    Timestamp,
)
from tuf.api.serialization.json import CanonicalJSONSerializer, JSONSerializer

from upgrade_server.clock import utcnow
from upgrade_server.errors import (
    NotFoundError,
)
from upgrade_server.products.models import Product
from upgrade_server.signing.export import Exporter, queue
from upgrade_server.signing.keys import KeyFolder
from upgrade_server.signing.models import MetadataFile, Repository, SigningKey, SigningRequest

TOP_ROLES = ("root", "targets", "snapshot", "timestamp")
OFFLINE_CAPABLE = ("root", "targets")
BIN_PREFIX = "bins"
_SERIALIZER = JSONSerializer(compact=True)


@dataclass(frozen=True)
class Expiry:
    """How long each role's metadata is valid (days)."""

    root: int = 365
    targets: int = 90
    snapshot: int = 7
    timestamp: int = 1

    def for_role(self, role: str) -> timedelta:
        name = "targets" if role.startswith(BIN_PREFIX + "-") else role
        return timedelta(days=getattr(self, name))


@dataclass
class OfflineRole:
    keys: list[SSlibKey]
    threshold: int = 1


@dataclass
class Change:
    """What a release does to its bin: add or replace a target, or remove it."""

    path: str
    target: TargetFile | None  # None removes the path


@dataclass
class Outcome:
    """Which roles were stored signed, and which wait for offline signatures."""

    stored: list[str] = field(default_factory=list)
    waiting: list[SigningRequest] = field(default_factory=list)


def role_of_bin(succinct: SuccinctRoles, path: str) -> str:
    return succinct.get_role_for_target(path)


class MetadataStore:
    """Reads and stores one product's metadata inside the caller's transaction."""

    def __init__(
        self,
        session: Session,
        product: Product,
        keys: KeyFolder,
        expiry: Expiry | None = None,
        exporter: Exporter | None = None,
    ) -> None:
        self.session = session
        self.product = product
        self.keys = keys
        self.expiry = expiry or Expiry()
        self.exporter = exporter

    # --- reading -------------------------------------------------------------

    def settings(self, lock: bool = False) -> Repository:
        stmt = select(Repository).where(Repository.product_id == self.product.id)
        if lock:
            stmt = stmt.with_for_update()
        repo = self.session.execute(stmt).scalar_one_or_none()
        if repo is None:
            raise NotFoundError(f"product {self.product.code} has no TUF repository")
        return repo

    def exists(self) -> bool:
        return (
            self.session.execute(
                select(Repository.product_id).where(Repository.product_id == self.product.id)
            ).first()
            is not None
        )

    def latest_file(self, role: str) -> MetadataFile | None:
        return self.session.execute(
            select(MetadataFile)
            .where(MetadataFile.product_id == self.product.id, MetadataFile.role == role)
            .order_by(MetadataFile.version.desc())
            .limit(1)
        ).scalar_one_or_none()

    def file(self, role: str, version: int) -> MetadataFile | None:
        return self.session.execute(
            select(MetadataFile).where(
                MetadataFile.product_id == self.product.id,
                MetadataFile.role == role,
                MetadataFile.version == version,
            )
        ).scalar_one_or_none()

    def latest(self, role: str) -> Metadata[Any] | None:
        row = self.latest_file(role)
        return Metadata.from_bytes(row.data) if row else None

    def root(self) -> Metadata[Root]:
        md = self._draft("root")
        if md is None:
            raise NotFoundError("no root metadata")
        return md

    def succinct(self) -> SuccinctRoles:
        targets = self._draft("targets")
        assert targets is not None and targets.signed.delegations is not None
        succinct = targets.signed.delegations.succinct_roles
        assert succinct is not None
        return succinct

    def open_request(self, role: str) -> SigningRequest | None:
        return self.session.execute(
            select(SigningRequest).where(
                SigningRequest.product_id == self.product.id,
                SigningRequest.role == role,
                SigningRequest.state == "open",
            )
        ).scalar_one_or_none()

    def open_requests(self) -> list[SigningRequest]:
        return list(
            self.session.execute(
                select(SigningRequest)
                .where(SigningRequest.product_id == self.product.id, SigningRequest.state == "open")
                .order_by(SigningRequest.id)
            ).scalars()
        )

    def _draft(self, role: str) -> Metadata[Any] | None:
        """The newest metadata of a role, signed or still waiting for signatures."""
        request = self.open_request(role)
        if request is not None:
            return Metadata.from_bytes(request.unsigned)
        return self.latest(role)

    def target_path_exists(self, path: str) -> bool:
        draft = self._draft(role_of_bin(self.succinct(), path))
        return draft is not None and path in draft.signed.targets

    # --- signing --------------------------------------------------------------

    def _submit(self, md: Metadata[Any], outcome: Outcome, name: str | None = None) -> None:
        """Give `md` its next version and expiry, then sign it or queue it."""
        role = name or md.signed.type
        latest = self.latest_file(role)
        md.signed.version = (latest.version if latest else 0) + 1
        md.signed.expires = (utcnow() + self.expiry.for_role(role)).replace(microsecond=0)
        md.signatures.clear()
        if self._is_offline(role):
            request = self.open_request(role)
            if request is not None:
                # The new draft carries the old one's changes; its signatures
                # no longer apply.
                request.state = "superseded"
                request.done_at = utcnow()
                self.session.flush()
            # Keys of the role that are online (say, a rotation's old key) sign now.
            payload = CanonicalJSONSerializer().serialize(md.signed)
            online_signatures = {
                signer.public_key.keyid: signer.sign(payload).signature
                for signer in self._online_signers(role, md)
            }
            request = SigningRequest(
                product_id=self.product.id,
                role=role,
                version=md.signed.version,
                unsigned=md.to_bytes(_SERIALIZER),
                signatures=online_signatures,
            )
            self.session.add(request)
            self.session.flush()
            outcome.waiting.append(request)
            return
        for signer in self._online_signers(role, md):
            md.sign(signer, append=True)
        self._store(role, md)
        outcome.stored.append(role)

    def _is_offline(self, role: str) -> bool:
        key_role = "targets" if role.startswith(BIN_PREFIX + "-") else role
        return key_role in self.settings().offline_roles

    def _online_signers(self, role: str, md: Metadata[Any]) -> list[Signer]:
        key_role = "targets" if role.startswith(BIN_PREFIX + "-") else role
        root = md.signed if isinstance(md.signed, Root) else self.root().signed
        keyids = list(root.roles[key_role].keyids)
        if isinstance(md.signed, Root) and md.signed.version > 1:
            # A new root is signed by the previous root's keys as well.
            previous = self.latest("root")
            if previous is not None:
                keyids += [k for k in previous.signed.roles["root"].keyids if k not in keyids]
        rows = self.session.execute(
            select(SigningKey).where(
                SigningKey.product_id == self.product.id,
                SigningKey.role == key_role,
                SigningKey.keyid.in_(keyids),
                SigningKey.online.is_(True),
            )
        ).scalars()
        return [self.keys.signer(self.product.code, key_role, row.keyid) for row in rows]

    def _store(self, role: str, md: Metadata[Any]) -> MetadataFile:
        row = MetadataFile(
            product_id=self.product.id,
            role=role,
            version=md.signed.version,
            data=md.to_bytes(_SERIALIZER),
            expires=md.signed.expires,
        )
        self.session.add(row)
        self.session.flush()
        if self.exporter is not None:
            queue(self.session, self.exporter, self.product.code, row)
        return row

    def _refresh_snapshot(self, outcome: Outcome) -> None:
        """New snapshot and timestamp over the newest stored targets and bins."""
        if self.latest_file("root") is None or self.latest_file("targets") is None:
            return  # offline roles still being signed; nothing to serve yet
        files = self.session.execute(
            select(MetadataFile.role, func.max(MetadataFile.version))
            .where(
                MetadataFile.product_id == self.product.id,
                MetadataFile.role.not_in(("root", "snapshot", "timestamp")),
            )
            .group_by(MetadataFile.role)
        ).all()
        succinct = self.succinct()
        versions = dict(files)
        if any(name not in versions for name in succinct.get_roles()):
            return
        snapshot = Snapshot(
            meta={f"{role}.json": MetaFile(version=version) for role, version in versions.items()}
        )
        md = Metadata(snapshot)
        self._submit(md, outcome)
        self._new_timestamp(outcome)

    def _new_timestamp(self, outcome: Outcome) -> None:
        snapshot = self.latest_file("snapshot")
        assert snapshot is not None
        meta = MetaFile(
            version=snapshot.version,
            length=len(snapshot.data),
            hashes={"sha256": hashlib.sha256(snapshot.data).hexdigest()},
        )
        self._submit(Metadata(Timestamp(snapshot_meta=meta)), outcome)
