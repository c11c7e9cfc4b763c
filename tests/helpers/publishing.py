"""Publishing a release through the API (from a test client, or streamed over
HTTP), and what a publish leaves behind."""

from __future__ import annotations

import io
import json
import uuid
from typing import Any

from sqlalchemy import func, select

from upgrade_server.audit.models import AuditEntry
from upgrade_server.extensions import db
from upgrade_server.releases.models import Release
from upgrade_server.signing.models import MetadataFile, SigningRequest
from upgrade_server.storage.local import LocalStore


def publish(
    client: Any,
    headers: dict[str, str],
    product_id: int,
    version: str,
    data: bytes = b"fw",
    *,
    expect: int | None = 201,
    **metadata: Any,
) -> Any:
    """Upload `data` as `fw.bin` of release `version` on the stable channel,
    with any further release `metadata` (min_from_version, parameters, …).

    The answer must have status `expect` (a new release) unless that is None,
    when the caller judges it (a publish meant to fail); the answer is returned.
    """
    r = client.post(
        f"/api/v1/products/{product_id}/releases",
        data={
            "metadata": json.dumps({"version": version, "channels": ["stable"], **metadata}),
            "artifact": (io.BytesIO(data), "fw.bin"),
        },
        headers=headers,
        content_type="multipart/form-data",
    )
    if expect is not None:
        assert r.status_code == expect, r.get_data(as_text=True)
    return r


def stored_state(app: Any, product: Any) -> dict[str, Any]:
    """The stored files, the row counts of the tables a publish writes and
    the product's metadata: equal before and after a publish that failed."""
    store: LocalStore = app.extensions["artifact_store"]
    files = sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*") if p.is_file())
    counts = {
        model.__tablename__: db.session.execute(
            select(func.count()).select_from(model)
        ).scalar_one()
        for model in (Release, MetadataFile, SigningRequest, AuditEntry)
    }
    metadata = {
        (row.role, row.version): row.data
        for row in db.session.execute(
            select(MetadataFile).where(MetadataFile.product_id == product.id)
        ).scalars()
    }
    return {"files": files, "counts": counts, "metadata": metadata}


def streamed_publish(version: str, artifact: list[bytes]) -> tuple[str, int, list[bytes]]:
    """The body of a publish (`artifact`, in the chunks given, as `fw.bin` on
    the stable channel) for a client that sends it piece by piece, as the
    publisher's CLI streams a file: its content type, length and pieces."""
    boundary = uuid.uuid4().hex
    metadata = json.dumps({"version": version, "channels": ["stable"]})
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n{metadata}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="artifact"; filename="fw.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    pieces = [head, *artifact, f"\r\n--{boundary}--\r\n".encode()]
    return f"multipart/form-data; boundary={boundary}", sum(map(len, pieces)), pieces
