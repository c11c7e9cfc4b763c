"""Publishing, promoting and withdrawing releases.

A publish is all or nothing: the artifact is staged while it streams in, the
release row and its TUF metadata are written in the request's transaction, and
only then is the artifact committed under its final name (with an undo that
removes it again if the transaction fails after all).

Errors raised: InvalidInputError, ConflictError, NotFoundError,
PermissionDeniedError, SigningError, StorageError.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session
from tuf.api.metadata import TargetFile

from upgrade_server.accounts.principal import Principal
from upgrade_server.accounts.roles import Permission
from upgrade_server.audit.service import record_change
from upgrade_server.clock import utcnow
from upgrade_server.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from upgrade_server.products.models import Product
from upgrade_server.releases import versions
from upgrade_server.releases.metadata import parse_metadata
from upgrade_server.releases.models import DEFAULT_CHANNELS, Channel, Release, ReleaseStatus
from upgrade_server.signing.metadata_store import Change, Outcome
from upgrade_server.signing.repository import TufRepository
from upgrade_server.storage import ArtifactStore
from upgrade_server.storage.base import Staged

_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,199}$")


def _require(actor: Principal, permission: Permission) -> None:
    if not actor.may(permission):
        raise PermissionDeniedError("you may not manage releases")


def channels(session: Session, product: Product) -> list[Channel]:
    """The product's channels in rank order; the defaults are created on first use."""
    found = list(
        session.execute(
            select(Channel).where(Channel.product_id == product.id).order_by(Channel.rank)
        ).scalars()
    )
    if found:
        return found
    for rank, name in enumerate(DEFAULT_CHANNELS):
        session.add(Channel(product_id=product.id, name=name, rank=rank))
    session.flush()
    return channels(session, product)


def set_channels(session: Session, actor: Principal, product: Product, names: list[str]) -> None:
    """Replace the channel order (lowest first); channels in use cannot go."""
    _require(actor, Permission.PRODUCT_WRITE)
    if not names or len(set(names)) != len(names):
        raise InvalidInputError("channels must be distinct", [{"field": "channels"}])
    existing = {c.name: c for c in channels(session, product)}
    for channel in existing.values():
        channel.rank = -1 - channel.rank  # free the ranks for the new order
    session.flush()
    for rank, name in enumerate(names):
        if name in existing:
            existing[name].rank = rank
        else:
            session.add(Channel(product_id=product.id, name=name, rank=rank))
    for name, channel in existing.items():
        if name not in names:
            if session.execute(
                select(Release.id).where(Release.channels.any(Channel.id == channel.id)).limit(1)
            ).first():
                raise ConflictError(f"channel {name} still holds releases")
            session.delete(channel)
    bump_generation(product)
    session.flush()


def visible_releases(actor: Principal, product_id: int | None = None) -> Select[Release]:
    stmt = select(Release)
    if product_id is not None:
        stmt = stmt.where(Release.product_id == product_id)
    if not actor.is_vendor:
        # Customers see what was offered: published, or withdrawn with its reason.
        stmt = stmt.where(Release.status != ReleaseStatus.PENDING.value)
    return stmt


def get_release(session: Session, actor: Principal, release_id: int) -> Release:
    release = session.execute(
        visible_releases(actor).where(Release.id == release_id)
    ).scalar_one_or_none()
    if release is None:
        raise NotFoundError(f"no release {release_id}")
    return release


def _validate(session: Session, product: Product, data: dict[str, Any]) -> dict[str, Any]:
    given = parse_metadata(data)
    errors: list[dict[str, Any]] = []
    version = versions.parse(given.version)
    filename = given.filename or f"{product.code}-{version}.bin"
    if not _FILENAME.match(filename):
        errors.append({"field": "filename", "message": "letters, digits and ._+- only"})
    known = {c.name: c for c in channels(session, product)}
    wanted = given.channels or [next(iter(known))]
    unknown = [c for c in wanted if c not in known]
    if unknown:
        errors.append({"field": "channels", "message": f"no such channel: {unknown}"})
    revisions = {r.code for r in product.hardware_revisions}
    hardware = given.hardware_revisions or sorted(revisions)
    bad_hw = [h for h in hardware if h not in revisions]
    if bad_hw:
        errors.append(
            {"field": "hardware_revisions", "message": f"not revisions of {product.code}: {bad_hw}"}
        )
    min_from = given.min_from_version
    min_key = None
    if min_from:
        min_key = versions.sort_key(versions.parse(min_from, "min_from_version"))
        if min_key >= versions.sort_key(version):
            errors.append(
                {"field": "min_from_version", "message": "must be below the release's version"}
            )
    if errors:
        raise InvalidInputError("the release description is invalid", errors)
    return {
        "version": str(version),
        "version_key": versions.sort_key(version),
        "filename": filename,
        "channels": [known[c] for c in dict.fromkeys(wanted)],
        "hardware_revisions": sorted(set(hardware)),
        "min_from_version": min_from or None,
        "min_from_key": min_key,
        "security_fix": given.security_fix,
        "notes": dict(given.notes),
        "guidance": {kind: dict(texts) for kind, texts in given.guidance.items()},
        "requirements": [r.model_dump() for r in given.requirements],
        "parameters": [p.model_dump() for p in given.parameters],
    }


def target_file(release: Release) -> TargetFile:
    """The TUF target of a release; `custom` is what the device checks itself."""
    return TargetFile(
        length=release.artifact_size,
        hashes={"sha256": release.artifact_sha256},
        path=release.target_path,
        unrecognized_fields={
            "custom": {
                "product": release.product.code,
                "version": release.version,
                "hardware_revisions": release.hardware_revisions,
                "min_from_version": release.min_from_version,
                "channels": release.channel_names,
                "security_fix": release.security_fix,
            }
        },
    )


def publish_release(
    session: Session,
    actor: Principal,
    product: Product,
    data: dict[str, Any],
    staged: Staged,
    store: ArtifactStore,
    repository: TufRepository,
    on_failure: Callable[[Callable[[], None]], None],
) -> tuple[Release, bool]:
    """Create a release from staged artifact bytes; returns (release, created).

    The same version with the same bytes again returns the existing release
    (created=False); with other bytes it is a ConflictError. Either way the
    staged bytes are discarded unless they become the new release's artifact.
    """
    _require(actor, Permission.RELEASE_PUBLISH)
    try:
        fields = _validate(session, product, data)
        existing = session.execute(
            select(Release).where(
                Release.product_id == product.id,
                Release.version_key == fields["version_key"],
            )
        ).scalar_one_or_none()
        if existing is not None:
            if existing.artifact_sha256 == staged.sha256 and existing.version == fields["version"]:
                store.discard(staged)
                return existing, False
            raise ConflictError(
                f"{product.code} {existing.version} exists with other bytes; "
                "a published artifact never changes: publish a new version"
            )
        release = Release(
            product=product,
            version=fields["version"],
            version_key=fields["version_key"],
            status=ReleaseStatus.PENDING.value,
            artifact_sha256=staged.sha256,
            artifact_size=staged.size,
            artifact_sha1=staged.sha1 or None,
            artifact_md5=staged.md5 or None,
            filename=fields["filename"],
            target_path=f"{fields['version']}/{fields['filename']}",
            min_from_version=fields["min_from_version"],
            min_from_key=fields["min_from_key"],
            security_fix=fields["security_fix"],
            notes=fields["notes"],
            guidance=fields["guidance"],
            hardware_revisions=fields["hardware_revisions"],
            hardware_key="," + ",".join(fields["hardware_revisions"]) + ",",
            requirements=fields["requirements"],
            parameters=fields["parameters"],
            created_by=actor.label,
            channels=fields["channels"],
        )
        session.add(release)
        session.flush()
        outcome = repository.change_targets([Change(release.target_path, target_file(release))])
        mark_published(session, repository, outcome)
    except BaseException:
        store.discard(staged)
        raise
    # Last: the bytes get their final name. Should the transaction still fail,
    # the undo removes them again (unless another release shares the bytes).
    already_there = store.exists(staged.sha256)
    store.commit(staged)
    if not already_there:
        on_failure(lambda: store.delete(staged.sha256))
    record_change(session, actor, "release.publish", release, None)
    return release, True


def mark_published(session: Session, repository: TufRepository, outcome: Outcome) -> None:
    """Releases whose targets are now in stored (signed) bins become visible
    (after a publish, or when offline signatures completed a bin)."""
    stored_bins = [r for r in outcome.stored if r.startswith("bins-")]
    if not stored_bins:
        return
    pending = session.execute(
        select(Release).where(
            Release.product_id == repository.product.id,
            Release.status == ReleaseStatus.PENDING.value,
        )
    ).scalars()
    now = utcnow()
    for release in pending:
        if repository.target_path_exists(release.target_path):
            release.status = ReleaseStatus.PUBLISHED.value
            release.published_at = now
            bump_generation(release.product)
    session.flush()


def bump_generation(product: Product) -> None:
    """What the update check can answer for this product has changed."""
    product.release_generation = (product.release_generation or 0) + 1


def promote_release(
    session: Session,
    actor: Principal,
    release: Release,
    channel_name: str,
    repository: TufRepository,
) -> Release:
    _require(actor, Permission.RELEASE_PUBLISH)
    if release.status == ReleaseStatus.WITHDRAWN.value:
        raise ConflictError("a withdrawn release cannot be promoted")
    known = {c.name: c for c in channels(session, release.product)}
    channel = known.get(channel_name)
    if channel is None:
        raise InvalidInputError("no such channel", [{"field": "channel", "message": channel_name}])
    if channel in release.channels:
        return release
    before = release.audit_view()
    release.channels.append(channel)
    bump_generation(release.product)
    session.flush()
    outcome = repository.change_targets([Change(release.target_path, target_file(release))])
    mark_published(session, repository, outcome)
    record_change(session, actor, "release.promote", release, before)
    return release


def withdraw_release(
    session: Session,
    actor: Principal,
    release: Release,
    reason: str,
    repository: TufRepository,
) -> Release:
    """Offer the release to no one from now on, and say why in its notes."""
    _require(actor, Permission.RELEASE_PUBLISH)
    if not reason.strip():
        raise InvalidInputError("a reason is required", [{"field": "reason"}])
    if release.status == ReleaseStatus.WITHDRAWN.value:
        return release
    before = release.audit_view()
    release.status = ReleaseStatus.WITHDRAWN.value
    release.withdrawn_at = utcnow()
    release.withdrawn_reason = reason.strip()
    bump_generation(release.product)
    session.flush()
    repository.change_targets([Change(release.target_path, None)])
    record_change(session, actor, "release.withdraw", release, before)
    return release
