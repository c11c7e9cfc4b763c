"""Management API of a product's TUF repository: set-up, keys, offline signatures."""

from __future__ import annotations

import json
from typing import Any

from apiflask import APIBlueprint, Schema
from apiflask.fields import Boolean, Dict, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range
from sqlalchemy import select

from upgrade_server.accounts.auth import current_principal, token_auth
from upgrade_server.accounts.roles import Permission, roles_for
from upgrade_server.audit.service import record
from upgrade_server.config import MAX_BIN_BITS, MIN_BIN_BITS
from upgrade_server.errors import NotFoundError
from upgrade_server.extensions import current_settings, session
from upgrade_server.products import service as products
from upgrade_server.releases.service import mark_published
from upgrade_server.signing.keys import public_keys_from_pems
from upgrade_server.signing.metadata_store import BIN_PREFIX, OfflineRole
from upgrade_server.signing.models import SigningRequest
from upgrade_server.signing.repository import TufRepository
from upgrade_server.signing.service import repository_for

bp = APIBlueprint("signing", __name__, url_prefix="/api/v1", tag="Signing")


class OfflineRoleIn(Schema):
    keys = List(String(), required=True, metadata={"description": "Ed25519 public keys, PEM"})
    threshold = Integer(load_default=1, validate=Range(1, 100))


class RepositoryIn(Schema):
    # A number that is not a whole one (2.5) is refused, not rounded to 2 (or to 0).
    bin_bits = Integer(load_default=None, strict=True, validate=Range(MIN_BIN_BITS, MAX_BIN_BITS))
    private = Boolean(load_default=False)
    offline = Dict(
        keys=String(validate=OneOf(["root", "targets"])),
        values=Nested(OfflineRoleIn),
        load_default=dict,
    )


class RotateIn(Schema):
    role = String(required=True, validate=OneOf(["root", "targets", "snapshot", "timestamp"]))
    keys = List(String(), load_default=list, metadata={"description": "offline keys, PEM"})
    threshold = Integer(load_default=None, validate=Range(1, 100))
    keep_existing = Boolean(
        load_default=False, metadata={"description": "add the keys beside the current ones"}
    )


class SignatureIn(Schema):
    keyid = String(required=True, validate=Length(64, 64))
    sig = String(required=True, validate=Length(1, 1024))


class SigningRequestOut(Schema):
    id = Integer()
    role = String()
    version = Integer()
    keyids = List(String())
    threshold = Integer()
    signed_by = List(String())
    state = String()
    unsigned = Dict(metadata={"description": "the metadata to sign; sign its canonical `signed`"})


class SigningRequestPage(Schema):
    items = List(Nested(SigningRequestOut))


def _repository(product_id: int) -> TufRepository:
    product = products.get_product(session(), product_id)
    return repository_for(session(), product, current_settings())


def _summary(repo: TufRepository) -> dict[str, Any]:
    settings = repo.settings()
    root = repo.root().signed
    latest = {r: repo.latest_file(r) for r in ("root", "targets", "snapshot", "timestamp")}
    return {
        "product": repo.product.code,
        "bin_bits": settings.bin_bits,
        "private": settings.private,
        "offline_roles": settings.offline_roles,
        "roles": {
            name: {"keyids": list(role.keyids), "threshold": role.threshold}
            for name, role in root.roles.items()
        },
        "versions": {r: (row.version if row else None) for r, row in latest.items()},
        "root": json.loads(latest["root"].data) if latest["root"] else None,
        "open_signing_requests": len(repo.open_requests()),
    }


def _request_out(repo: TufRepository, request: SigningRequest) -> dict[str, Any]:
    unsigned = json.loads(request.unsigned)
    if request.role.startswith(BIN_PREFIX + "-"):
        succinct = repo.succinct()
        keyids, threshold = list(succinct.keyids), succinct.threshold
    else:
        signed_root = unsigned["signed"] if request.role == "root" else None
        roles = signed_root["roles"] if signed_root else repo.root().signed.to_dict()["roles"]
        keyids, threshold = roles[request.role]["keyids"], roles[request.role]["threshold"]
        if request.role == "root" and repo.latest_file("root") is not None:
            keyids = sorted(set(keyids) | set(repo.root().signed.roles["root"].keyids))
    return {
        "id": request.id,
        "role": request.role,
        "version": request.version,
        "keyids": keyids,
        "threshold": threshold,
        "signed_by": sorted(request.signatures),
        "state": request.state,
        "unsigned": unsigned,
    }


@bp.get("/products/<int:product_id>/repository")
@bp.auth_required(token_auth, roles=roles_for(Permission.RELEASE_READ))
def get_repository(product_id: int) -> dict[str, Any]:
    """The product's TUF repository: roles, keys, thresholds, versions and current root."""
    return _summary(_repository(product_id))


@bp.post("/products/<int:product_id>/repository")
@bp.auth_required(token_auth, roles=roles_for(Permission.SIGNING_MANAGE))
@bp.input(RepositoryIn, arg_name="data")
def create_repository(product_id: int, data: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Create the repository; roles listed under `offline` use the given public keys."""
    repo = _repository(product_id)
    offline = {}
    for role, spec in data["offline"].items():
        keys = public_keys_from_pems(spec["keys"], f"offline.{role}.keys")
        offline[role] = OfflineRole(keys, spec["threshold"])
    bin_bits = data["bin_bits"]
    if bin_bits is None:
        bin_bits = current_settings().tuf_bin_bits
    repo.initialise(offline, bin_bits=bin_bits)
    repo.settings().private = data["private"]
    record(
        session(),
        current_principal(),
        "repository.create",
        "products",
        product_id,
        after={"offline_roles": sorted(offline), "bin_bits": bin_bits},
    )
    return _summary(repo), 201


@bp.post("/products/<int:product_id>/repository/rotate")
@bp.auth_required(token_auth, roles=roles_for(Permission.SIGNING_MANAGE))
@bp.input(RotateIn, arg_name="data")
def rotate(product_id: int, data: dict[str, Any]) -> dict[str, Any]:
    """Replace a role's keys; a new root version is signed by old and new root keys."""
    repo = _repository(product_id)
    keys = public_keys_from_pems(data["keys"], "keys") or None
    before = _summary(repo)["roles"]
    repo.rotate_keys(data["role"], keys, data["threshold"], data["keep_existing"])
    after = _summary(repo)
    record(
        session(),
        current_principal(),
        "repository.rotate",
        "products",
        product_id,
        before={"roles": before},
        after={"roles": after["roles"]},
    )
    return after


@bp.get("/products/<int:product_id>/signing-requests")
@bp.auth_required(token_auth, roles=roles_for(Permission.SIGNING_MANAGE))
@bp.output(SigningRequestPage)
def list_requests(product_id: int) -> dict[str, Any]:
    """Metadata waiting for offline signatures."""
    repo = _repository(product_id)
    return {"items": [_request_out(repo, r) for r in repo.open_requests()]}


@bp.post("/signing-requests/<int:request_id>/signatures")
@bp.auth_required(token_auth, roles=roles_for(Permission.SIGNING_MANAGE))
@bp.input(SignatureIn, arg_name="data")
@bp.output(SigningRequestOut)
def add_signature(request_id: int, data: dict[str, Any]) -> dict[str, Any]:
    """Upload one signature; at the threshold the metadata is published."""
    request = (
        session()
        .execute(select(SigningRequest).where(SigningRequest.id == request_id))
        .scalar_one_or_none()
    )
    if request is None:
        raise NotFoundError(f"no signing request {request_id}")
    repo = _repository(request.product_id)
    outcome = repo.add_signature(request, data["keyid"], data["sig"])
    mark_published(session(), repo, outcome)
    record(
        session(),
        current_principal(),
        "repository.sign",
        "tuf_signing_requests",
        request.id,
        after={
            "role": request.role,
            "version": request.version,
            "keyid": data["keyid"],
            "state": request.state,
        },
    )
    return _request_out(repo, request)
