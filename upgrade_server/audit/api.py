from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint, Schema
from apiflask.fields import Boolean, DateTime, Dict, Integer, String
from sqlalchemy import select

from upgrade_server.accounts.auth import token_auth
from upgrade_server.accounts.roles import Permission, roles_for
from upgrade_server.audit.hooks import audit_checkpoints
from upgrade_server.audit.models import AuditEntry
from upgrade_server.audit.service import verify_chain
from upgrade_server.extensions import session
from upgrade_server.pagination import paginate
from upgrade_server.schemas import PageQuery, page_body, page_schema

bp = APIBlueprint("audit", __name__, url_prefix="/api/v1/audit", tag="Audit log")


class AuditOut(Schema):
    id = Integer()
    at = DateTime()
    actor_type = String()
    actor_id = Integer(allow_none=True)
    actor_label = String()
    action = String()
    object_type = String()
    object_id = String(allow_none=True)
    organisation_id = Integer(allow_none=True)
    before = Dict(allow_none=True)
    after = Dict(allow_none=True)
    prev_hash = String()
    entry_hash = String()


class AuditQuery(PageQuery):
    action = String(load_default=None)
    object_type = String(load_default=None)
    object_id = String(load_default=None)
    organisation_id = Integer(load_default=None)
    actor_label = String(load_default=None)


class ChainOut(Schema):
    ok = Boolean()
    checked = Integer()
    first_bad_id = Integer(
        allow_none=True, metadata={"description": "null when a rewrite cannot be placed"}
    )
    reason = String(allow_none=True)
    anchored = Integer(
        metadata={"description": "entries the checkpoint outside the database vouches for"}
    )
    anchored_at = DateTime(allow_none=True, metadata={"description": "when it was written"})


AuditPage = page_schema(AuditOut, "AuditPage")


@bp.get("")
@bp.auth_required(token_auth, roles=roles_for(Permission.AUDIT_READ))
@bp.input(AuditQuery, location="query", arg_name="query")
@bp.output(AuditPage)
def list_entries(query: dict[str, Any]) -> dict[str, Any]:
    """Read the audit log, oldest first, with filters."""
    stmt = select(AuditEntry)
    for key in ("action", "object_type", "object_id", "organisation_id", "actor_label"):
        if query[key] is not None:
            stmt = stmt.where(getattr(AuditEntry, key) == query[key])
    return page_body(paginate(session(), stmt, AuditEntry.id, query["limit"], query["after"]))


@bp.get("/verify")
@bp.auth_required(token_auth, roles=roles_for(Permission.AUDIT_READ))
@bp.output(ChainOut)
def verify() -> Any:
    """Check the hash chain and name the first entry that breaks it; hold it
    against the checkpoint kept outside the database (a cut tail, a rewrite)."""
    return verify_chain(session(), audit_checkpoints())
