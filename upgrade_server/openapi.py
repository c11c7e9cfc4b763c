"""Post-processing of the OpenAPI document that APIFlask generates from the code."""

from __future__ import annotations

import json
import re
import warnings
from typing import Any

from apiflask import APIFlask

from upgrade_server.releases.metadata import metadata_json_schema
from upgrade_server.routing import MAX_ID

# APIFlask registers a schema again (as "Name1") when the marshmallow plugin
# already met it nested in another schema. The copies are identical; fold them.
warnings.filterwarnings("ignore", message=".*has already been added to the spec.*")
_COPY = re.compile(r"^(?P<base>.+?)\d+$")


def fold_duplicate_schemas(spec: Any) -> Any:
    schemas = spec.get("components", {}).get("schemas", {})
    renames: dict[str, str] = {}
    for name, body in list(schemas.items()):
        match = _COPY.match(name)
        if match and schemas.get(match["base"]) == body:
            renames[name] = match["base"]
    if not renames:
        return spec
    for name in renames:
        del schemas[name]
    text = json.dumps(spec)
    for old, new in renames.items():
        text = text.replace(f'"#/components/schemas/{old}"', f'"#/components/schemas/{new}"')
    folded: dict[str, Any] = json.loads(text)
    return folded


def bound_path_ids(spec: Any) -> Any:
    """Integer path parameters are ids: say the range the server matches (IdConverter)."""
    for operations in spec.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []) if isinstance(operation, dict) else []:
                schema = parameter.get("schema", {})
                if parameter.get("in") == "path" and schema.get("type") == "integer":
                    schema.update(minimum=0, maximum=MAX_ID)
    return spec


PUBLISH_PATH = "/api/v1/products/{product_id}/releases"


def document_publish_body(spec: Any) -> Any:
    """The publish body is multipart, read as a stream (no request schema
    sees it): document its parts, the metadata by its pydantic model."""
    operation = spec.get("paths", {}).get(PUBLISH_PATH, {}).get("post")
    if operation is None:
        return spec
    spec.setdefault("components", {}).setdefault("schemas", {}).update(metadata_json_schema())
    parts = {
        "metadata": {"$ref": "#/components/schemas/ReleaseMetadata"},
        "sha256": {
            "type": "string",
            "pattern": "^[0-9a-f]{64}$",
            "description": "the artifact's SHA-256, checked against the bytes received",
        },
        "artifact": {"type": "string", "contentMediaType": "application/octet-stream"},
    }
    operation["requestBody"] = {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": parts,
                    "required": ["metadata", "artifact"],
                },
                "encoding": {"metadata": {"contentType": "application/json"}},
            }
        },
    }
    return spec


def init_app(app: APIFlask) -> None:
    app.spec_processor(fold_duplicate_schemas)
    app.spec_processor(bound_path_ids)
    app.spec_processor(document_publish_body)
