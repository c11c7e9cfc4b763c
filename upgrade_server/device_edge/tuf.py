"""TUF repository serving, in the layout the stock python-tuf client expects.

    /tuf/<product>/metadata/timestamp.json
    /tuf/<product>/metadata/<N>.root.json        (every root version stays served)
    /tuf/<product>/metadata/<V>.<role>.json      (targets, snapshot, bins-XX)
    /tuf/<product>/targets/<version>/<sha256>.<filename>

so that `tuf.ngclient.Updater(metadata_base_url=…/metadata/,
target_base_url=…/targets/)` works with only the product's root.json.
"""

from __future__ import annotations

import logging
import re

from flask import Response, abort, request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError

from upgrade_server.device_edge.blueprints import tuf as bp
from upgrade_server.devices.models import Device
from upgrade_server.devices.service import authenticate_device_token
from upgrade_server.downloads import send_artifact
from upgrade_server.errors import AuthenticationError
from upgrade_server.extensions import current_settings, session
from upgrade_server.products import service as products
from upgrade_server.products.models import Product
from upgrade_server.releases.models import Release, ReleaseStatus
from upgrade_server.routing import MAX_ID
from upgrade_server.signing.repository import TufRepository
from upgrade_server.signing.service import repository_for
from upgrade_server.updates.service import may_download

log = logging.getLogger(__name__)

_VERSIONED = re.compile(r"^(\d{1,10})\.([a-z0-9-]+)\.json$")
_TARGET = re.compile(r"^(?P<dir>.+)/(?P<sha>[0-9a-f]{64})\.(?P<name>[^/]+)$")


def _product(code: str) -> tuple[Product, Device | None]:
    """The product, and the device asking (required for a private repository).

    A token that is sent must be valid, as on the device API (401, before the
    product is looked up, so it reveals nothing); a private repository is not
    found without one, or by another product's device."""
    header = request.headers.get("Authorization", "")
    device = None
    if header:
        device = authenticate_device_token(session(), header.removeprefix("Bearer ").strip())
        if device is None:
            raise AuthenticationError("the device token is not valid")
    product = products.find_by_code(session(), code)
    if product is None:
        abort(404)
    repo = repository_for(session(), product, current_settings())
    if not repo.exists():
        abort(404)
    if device is not None and device.product_id != product.id:
        abort(404)
    if device is None and repo.settings().private:
        abort(404)
    return product, device


def _json(data: bytes, max_age: int) -> Response:
    response = Response(data, mimetype="application/json")
    response.cache_control.public = True
    response.cache_control.max_age = max_age
    response.add_etag()
    response.make_conditional(request)
    return response


def _refresh(repo: TufRepository) -> None:
    """Re-sign snapshot and timestamp at half-life, on the request that notices.

    Several workers may notice at once: the first to insert the next version
    wins (unique product, role, version); the others drop their attempt and
    serve the version they have, which is still valid for half its life.
    """
    try:
        with session().begin_nested():
            repo.refresh_expiring()
    except (IntegrityError, OperationalError):
        log.info("another worker re-signed %s's timestamp first", repo.product.code)


@bp.get("/<code>/metadata/<name>")
def metadata(code: str, name: str) -> Response:
    product, _ = _product(code)
    repo = repository_for(session(), product, current_settings())
    if name == "timestamp.json":
        _refresh(repo)
        row = repo.latest_file("timestamp")
        if row is None:
            abort(404)
        # Devices poll this; caches may keep it only briefly.
        return _json(row.data, max_age=60)
    if name == "root.json":
        row = repo.latest_file("root")
    else:
        match = _VERSIONED.match(name)
        if match is None or int(match.group(1)) > MAX_ID:
            abort(404)
        row = repo.file(match.group(2), int(match.group(1)))
    if row is None:
        abort(404)
    # Versioned files never change: cache them for as long as they are valid.
    return _json(row.data, max_age=3600 if name == "root.json" else 86400)


@bp.get("/<code>/targets/<path:name>")
def target(code: str, name: str) -> Response:
    product, device = _product(code)
    match = _TARGET.match(name)
    if match is None:
        abort(404)
    target_path = f"{match['dir']}/{match['name']}"
    release = (
        session()
        .execute(
            select(Release).where(
                Release.product_id == product.id,
                Release.target_path == target_path,
                Release.artifact_sha256 == match["sha"],
                Release.status == ReleaseStatus.PUBLISHED.value,
            )
        )
        .scalar_one_or_none()
    )
    if release is None:
        abort(404)
    if device is not None:
        # A device gets only what it may install (hardware, coverage).
        may_download(device, release)
    # Targets are immutable (their hash is in the name): caches may keep them.
    return send_artifact(release, max_age=86400)
