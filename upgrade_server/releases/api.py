"""Management API for releases: publish (streamed upload), list, show, promote, withdraw."""

from __future__ import annotations

import json
from typing import Any

from apiflask import APIBlueprint, Schema
from apiflask.fields import Boolean, DateTime, Dict, Function, Integer, List, String
from apiflask.validators import Length
from flask import request

from upgrade_server.accounts.auth import current_principal, token_auth
from upgrade_server.accounts.roles import Permission, roles_for
from upgrade_server.audit.service import record
from upgrade_server.errors import BadRequestError, InvalidInputError, accepts
from upgrade_server.extensions import artifact_store, current_settings, session
from upgrade_server.pagination import paginate
from upgrade_server.products import service as products
from upgrade_server.releases import service
from upgrade_server.releases.models import Release
from upgrade_server.schemas import PageQuery, page_body, page_schema
from upgrade_server.signing.service import repository_for
from upgrade_server.storage.base import StagingWriter
from upgrade_server.transaction import on_failure
from upgrade_server.uploads import stream_files_into, upload_was_cut_short

bp = APIBlueprint("releases", __name__, url_prefix="/api/v1", tag="Releases")


class ReleaseOut(Schema):
    id = Integer()
    product_id = Integer()
    product = String(attribute="product.code")
    version = String()
    status = String(metadata={"description": "pending-signatures, published or withdrawn"})
    channels = List(String(), attribute="channel_names")
    artifact = Function(
        lambda r: {
            "sha256": r.artifact_sha256,
            "size": r.artifact_size,
            "filename": r.filename,
            "target_path": r.target_path,
        },
        metadata={"description": "sha256, size, filename and TUF target path"},
    )
    hardware_revisions = List(String())
    requirements = List(Dict())
    parameters = List(Dict())
    min_from_version = String(allow_none=True)
    security_fix = Boolean()
    notes = Dict()
    guidance = Dict()
    created_at = DateTime()
    created_by = String()
    published_at = DateTime(allow_none=True)
    withdrawn_at = DateTime(allow_none=True)
    withdrawn_reason = String(allow_none=True)


class ReleaseQuery(PageQuery):
    status = String(load_default=None)
    channel = String(load_default=None)


class PromoteIn(Schema):
    channel = String(required=True, validate=Length(1, 32))


class WithdrawIn(Schema):
    reason = String(required=True, validate=Length(1, 2000))


ReleasePage = page_schema(ReleaseOut, "ReleasePage")


PUBLISH_DOC = """Upload an artifact and publish it as a signed release.

Send `multipart/form-data` with two parts, in this order: `metadata`, a JSON
document (version, filename, channels, notes and guidance in zh-CN and en,
hardware_revisions, requirements, parameters, min_from_version,
security_fix), then `artifact`, the file. An optional `sha256` part before
the artifact is checked against the bytes received.

The artifact streams into storage while it is hashed; the release, its TUF
metadata and the file appear together or not at all. The same version with
the same bytes again answers 200 with the existing release; with other bytes,
409. With offline targets keys the release waits in `pending-signatures` until
the threshold of publishers has signed."""


@bp.post("/products/<int:product_id>/releases")
@accepts("multipart/form-data")
@bp.auth_required(token_auth, roles=roles_for(Permission.RELEASE_PUBLISH))
@bp.output(ReleaseOut, status_code=201)
@bp.doc(description=PUBLISH_DOC)
def publish(product_id: int) -> Any:
    """Publish a release."""
    settings = current_settings()
    product = products.get_product(session(), product_id)
    store = artifact_store()
    request.max_content_length = settings.max_artifact_bytes + settings.max_request_bytes
    # Notes and guidance in two languages can be long; the parser's buffer is 1 MiB.
    request.max_form_memory_size = 4 * 1024 * 1024
    stream_files_into(store, settings.max_artifact_bytes)
    artifact = request.files.get("artifact")
    if upload_was_cut_short():
        raise BadRequestError("the upload ended before the artifact was complete")
    if artifact is None or not isinstance(artifact.stream, StagingWriter):
        raise InvalidInputError("no artifact", [{"field": "artifact", "message": "required"}])
    writer: StagingWriter = artifact.stream
    try:
        metadata = json.loads(request.form.get("metadata") or "{}")
        if not isinstance(metadata, dict):
            raise ValueError("not an object")
    except ValueError as exc:
        raise InvalidInputError(
            "metadata is not a JSON object", [{"field": "metadata", "message": str(exc)}]
        ) from exc
    metadata.setdefault("filename", artifact.filename or None)
    staged = writer.finish(request.form.get("sha256") or None)
    repository = repository_for(session(), product, settings, create=True)
    release, created = service.publish_release(
        session(), current_principal(), product, metadata, staged, store, repository, on_failure
    )
    return release, 201 if created else 200


@bp.get("/products/<int:product_id>/releases")
@bp.auth_required(token_auth, roles=roles_for(Permission.RELEASE_READ))
@bp.input(ReleaseQuery, location="query", arg_name="query")
@bp.output(ReleasePage)
def list_releases(product_id: int, query: dict[str, Any]) -> dict[str, Any]:
    """A product's releases, oldest first (customers: published and withdrawn only)."""
    products.get_product(session(), product_id)
    stmt = service.visible_releases(current_principal(), product_id)
    if query["status"]:
        stmt = stmt.where(Release.status == query["status"])
    if query["channel"]:
        from upgrade_server.releases.models import Channel

        stmt = stmt.where(Release.channels.any(Channel.name == query["channel"]))
    return page_body(paginate(session(), stmt, Release.id, query["limit"], query["after"]))


@bp.get("/releases/<int:release_id>")
@bp.auth_required(token_auth, roles=roles_for(Permission.RELEASE_READ))
@bp.output(ReleaseOut)
def get_release(release_id: int) -> Any:
    """One release with its notes, guidance, requirements and parameter changes."""
    return service.get_release(session(), current_principal(), release_id)


@bp.post("/releases/<int:release_id>/promote")
@bp.auth_required(token_auth, roles=roles_for(Permission.RELEASE_PUBLISH))
@bp.input(PromoteIn, arg_name="data")
@bp.output(ReleaseOut)
def promote(release_id: int, data: dict[str, Any]) -> Any:
    """Add a further channel to a release (re-signs its target)."""
    actor = current_principal()
    release = service.get_release(session(), actor, release_id)
    repository = repository_for(session(), release.product, current_settings())
    return service.promote_release(session(), actor, release, data["channel"], repository)


@bp.post("/releases/<int:release_id>/withdraw")
@bp.auth_required(token_auth, roles=roles_for(Permission.RELEASE_PUBLISH))
@bp.input(WithdrawIn, arg_name="data")
@bp.output(ReleaseOut)
def withdraw(release_id: int, data: dict[str, Any]) -> Any:
    """Withdraw a release: offered to no one from now on; its notes say why."""
    actor = current_principal()
    release = service.get_release(session(), actor, release_id)
    repository = repository_for(session(), release.product, current_settings())
    return service.withdraw_release(session(), actor, release, data["reason"], repository)


class ChannelsIn(Schema):
    channels = List(
        String(validate=Length(1, 32)),
        required=True,
        validate=Length(1, 20),
        metadata={"description": "channel names, lowest first, e.g. [dev, beta, stable]"},
    )


class ChannelsOut(Schema):
    channels = List(String())


@bp.get("/products/<int:product_id>/channels")
@bp.auth_required(token_auth, roles=roles_for(Permission.RELEASE_READ))
@bp.output(ChannelsOut)
def get_channels(product_id: int) -> dict[str, Any]:
    """The product's channels, lowest first; a device on one also takes those above."""
    product = products.get_product(session(), product_id)
    return {"channels": [c.name for c in service.channels(session(), product)]}


@bp.put("/products/<int:product_id>/channels")
@bp.auth_required(token_auth, roles=roles_for(Permission.PRODUCT_WRITE))
@bp.input(ChannelsIn, arg_name="data")
@bp.output(ChannelsOut)
def put_channels(product_id: int, data: dict[str, Any]) -> dict[str, Any]:
    """Set the channel order; a channel that still holds releases cannot be dropped."""
    product = products.get_product(session(), product_id)
    before = [c.name for c in service.channels(session(), product)]
    service.set_channels(session(), current_principal(), product, data["channels"])
    after = [c.name for c in service.channels(session(), product)]
    record(
        session(),
        current_principal(),
        "product.channels",
        "products",
        product.id,
        before={"channels": before},
        after={"channels": after},
    )
    return {"channels": after}
