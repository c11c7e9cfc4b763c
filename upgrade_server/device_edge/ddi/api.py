"""The DDI resources a hawkBit client calls, on one blueprint (`ddi.`).

The base poll is answered by the device edge without Flask (poll.py); its
view here documents it and answers the same way should it be reached.
Every other resource finds the device as the poll does (targets.py), then
asks the domains: the offer (deployments.actions), the install log
(feedback.py), the inventory (devices), the artifact (downloads).
"""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint, Schema
from apiflask.fields import Dict, Integer, List, Nested, Raw, String
from apiflask.validators import Length, OneOf, Range
from flask import Response, current_app, g, request
from marshmallow import EXCLUDE
from sqlalchemy import select

from upgrade_server.clock import utcnow
from upgrade_server.database import read_only, writes
from upgrade_server.device_edge.ddi import deployments, feedback
from upgrade_server.device_edge.ddi.poll import BasePoll
from upgrade_server.device_edge.ddi.targets import find_target
from upgrade_server.device_edge.update_check import SEMVER, UpdateCheck
from upgrade_server.devices.models import Device
from upgrade_server.downloads import send_artifact, starts_a_download
from upgrade_server.errors import NotFoundError
from upgrade_server.extensions import artifact_store, session
from upgrade_server.releases import versions
from upgrade_server.releases.models import Release
from upgrade_server.updates import service
from upgrade_server.updates.models import InstallEvent, InstallStatus

bp = APIBlueprint(
    "ddi", __name__, url_prefix="/<tenant>/controller/v1/<controller_id>", tag="hawkBit DDI"
)
SECURITY: list[str | dict[str, list[Any]]] = ["TargetToken", "GatewayToken"]
# configData attributes a version may be read from (an install done outside
# the server, e.g. by hand or by the device's own recovery).
VERSION_ATTRIBUTES = ("installed_version", "sw_version", "version")
MAX_ATTRIBUTES = 100


class _Lenient(Schema):
    class Meta:
        unknown = EXCLUDE  # hawkBit clients send fields of newer API versions


class DdiProgressIn(_Lenient):
    cnt = Integer(validate=Range(0, 2**31 - 1))
    of = Integer(validate=Range(0, 2**31 - 1))
    percentage = Integer(validate=Range(0, 100))  # RAUC's hawkBit client


class DdiResultIn(_Lenient):
    finished = String(load_default="none", validate=OneOf(feedback.RESULTS))
    progress = Nested(DdiProgressIn, load_default=None)


class DdiStatusIn(_Lenient):
    execution = String(required=True, validate=OneOf(feedback.EXECUTIONS))
    result = Nested(DdiResultIn, load_default=None)
    code = Integer(load_default=None, validate=Range(-(2**31), 2**31 - 1))
    # Any number of lines of any length (SWUpdate sends its whole log as one
    # feedback, with lines of a kilobyte): kept cut to size (feedback.Feedback),
    # never refused. The body's 64 KiB limit bounds them.
    details = List(
        String(),
        load_default=list,
        metadata={"description": "free text; the first 2,000 characters are kept"},
    )


# SWUpdate sends the action's id as a number, hawkBit's documents as a
# string; neither is used (the URL names the action).
_ECHOED = {"description": "the action's id, as the client sends it (ignored)"}


class DdiFeedbackIn(_Lenient):
    id = Raw(load_default=None, metadata=_ECHOED)
    time = Raw(load_default=None, metadata={"description": "when, as the client says (ignored)"})
    status = Nested(DdiStatusIn, required=True)


class DdiConfigDataIn(_Lenient):
    id = Raw(load_default=None, metadata=_ECHOED)
    time = Raw(load_default=None, metadata={"description": "when, as the client says (ignored)"})
    status = Nested(DdiStatusIn, load_default=None)
    mode = String(load_default="merge", validate=OneOf(("merge", "replace", "remove")))
    data = Dict(
        keys=String(validate=Length(1, 128)),
        values=String(validate=Length(0, 128)),
        required=True,
        validate=Length(0, MAX_ATTRIBUTES),
    )


class DdiHistoryIn(Schema):
    actionHistory = Integer(load_default=None, validate=Range(-1, 100))
    c = String(load_default=None, validate=Length(0, 64))


def _check() -> UpdateCheck:
    check: UpdateCheck = current_app.extensions["update_check"]
    return check


@bp.before_request
def _authenticate() -> None:
    """Who is asking, before what they say is read: a request is refused as a
    message (413, 415, 400: http_errors.check_request), then by who sends it
    (401), then by what it says (422), as on every device endpoint. The base
    poll answers its own 401 (poll.py, as the device edge does)."""
    if request.endpoint == "ddi.base_poll" or request.view_args is None:
        return
    g.ddi_target = find_target(
        session().connection(),
        request.view_args["tenant"],
        request.view_args["controller_id"],
        request.headers.get("Authorization", ""),
    )


def _target(tenant: str, controller_id: str) -> tuple[Any, Device]:
    """The calling device (targets.COLUMNS row, and the model)."""
    row = g.ddi_target
    device = session().get(Device, row.id)
    assert device is not None
    return row, device


def _base(tenant: str, controller_id: str) -> str:
    return deployments.controller_base(
        request.scheme, request.host, request.script_root, tenant, controller_id
    )


def _release(device: Device, action_id: int) -> Release:
    release = session().get(Release, action_id)
    if release is None or release.product_id != device.product_id:
        raise NotFoundError(f"no action {action_id} for this controller")
    return release


def _history(device: Device, release: Release, count: int | None) -> list[str] | None:
    if count is None or count == 0:
        return None
    return deployments.action_history(session(), device.id, release.id, 100 if count < 0 else count)


@bp.get("")
@read_only
@bp.doc(
    security=SECURITY,
    responses={
        200: "polling sleep and links: deploymentBase (an action to run),"
        " cancelAction (an action to stop), configData (attributes wanted)",
        401: "no TargetToken of this controller or GatewayToken of this tenant",
    },
)
def base_poll(tenant: str, controller_id: str) -> Response:
    """The controller's base resource: what to do next, and when to ask again."""
    from upgrade_server.device_edge.wsgi import problem_answer

    # The device edge (wsgi.py) answers every base poll before Flask
    # dispatches it; were this view reached, it would answer the same way.
    try:
        poll: BasePoll = current_app.extensions["ddi_poll"]
        status, headers, body = poll(request.environ, tenant, controller_id)
    except Exception as error:
        status, headers, body = problem_answer(error, request.path)
    return Response(body, status=status, headers=headers)


@bp.get("/deploymentBase/<int:action_id>")
@writes  # the sha1 and md5 of an older release are kept on first use
@bp.input(DdiHistoryIn, location="query", arg_name="query")
@bp.doc(security=SECURITY, responses={404: "no such action for this controller"})
def deployment_base(
    tenant: str, controller_id: str, action_id: int, query: dict[str, Any]
) -> dict[str, Any]:
    """The action: the release's chunk and artifact (size, sha1, md5, sha256,
    download links), `download`/`update` (attempt, forced, skip) and the
    maintenance window's state."""
    row, device = _target(tenant, controller_id)
    acts = deployments.actions(_check(), session().connection(), row, utcnow())
    if acts.offered is None or acts.offered.release_id != action_id:
        raise NotFoundError(f"no action {action_id} for this controller now")
    release = _release(device, action_id)
    deployments.fill_digests(release, artifact_store())
    history = _history(device, release, query["actionHistory"])
    return deployments.deployment_document(release, acts, _base(tenant, controller_id), history)


@bp.get("/installedBase/<int:action_id>")
@writes
@bp.input(DdiHistoryIn, location="query", arg_name="query")
@bp.doc(security=SECURITY, responses={404: "the controller did not install this action"})
def installed_base(
    tenant: str, controller_id: str, action_id: int, query: dict[str, Any]
) -> dict[str, Any]:
    """An action the controller finished installing, as it was deployed."""
    _, device = _target(tenant, controller_id)
    release = _release(device, action_id)
    installed = (
        session()
        .execute(
            select(InstallEvent.id)
            .where(
                InstallEvent.device_id == device.id,
                InstallEvent.release_id == release.id,
                InstallEvent.status == InstallStatus.INSTALLED.value,
            )
            .limit(1)
        )
        .first()
    )
    if installed is None:
        raise NotFoundError(f"this controller did not install action {action_id}")
    deployments.fill_digests(release, artifact_store())
    history = _history(device, release, query["actionHistory"])
    return deployments.deployment_document(release, None, _base(tenant, controller_id), history)


@bp.post("/deploymentBase/<int:action_id>/feedback")
@bp.input(DdiFeedbackIn, arg_name="data")
@bp.doc(security=SECURITY, responses={200: "recorded (or a repeat)", 404: "no such action"})
def deployment_feedback(
    tenant: str, controller_id: str, action_id: int, data: dict[str, Any]
) -> Response:
    """The action's progress or end: an install step in the device's log."""
    _, device = _target(tenant, controller_id)
    release = _release(device, action_id)
    feedback.record_action_feedback(session(), device, release, feedback.Feedback.from_body(data))
    return Response(status=200)


@bp.get("/cancelAction/<int:action_id>")
@bp.doc(security=SECURITY, responses={404: "no action to cancel"})
def cancel_action(tenant: str, controller_id: str, action_id: int) -> dict[str, Any]:
    """The cancel of an action the controller is part-way through, whose
    release is no longer offered to it (withdrawn, rollout aborted, superseded)."""
    row, _ = _target(tenant, controller_id)
    acts = deployments.actions(_check(), session().connection(), row, utcnow())
    if acts.cancel != action_id:
        raise NotFoundError(f"no cancel of action {action_id} for this controller")
    return {"id": str(action_id), "cancelAction": {"stopId": str(action_id)}}


@bp.post("/cancelAction/<int:action_id>/feedback")
@bp.input(DdiFeedbackIn, arg_name="data")
@bp.doc(security=SECURITY, responses={200: "recorded (or a repeat)", 404: "no such action"})
def cancel_feedback(
    tenant: str, controller_id: str, action_id: int, data: dict[str, Any]
) -> Response:
    """How the controller answered the cancel: done (its attempt ends) or rejected."""
    _, device = _target(tenant, controller_id)
    release = _release(device, action_id)
    feedback.record_cancel_feedback(session(), device, release, feedback.Feedback.from_body(data))
    return Response(status=200)


@bp.put("/configData")
@bp.input(DdiConfigDataIn, arg_name="data")
@bp.doc(security=SECURITY, responses={200: "kept in the device's inventory"})
def config_data(tenant: str, controller_id: str, data: dict[str, Any]) -> Response:
    """The controller's attributes, into the device's inventory; a version
    among them that the server does not know is an install done outside it."""
    _, device = _target(tenant, controller_id)
    attributes: dict[str, str] = data["data"]
    if data["mode"] == "replace":
        inventory = dict(attributes)
    elif data["mode"] == "remove":
        inventory = {k: v for k, v in (device.inventory or {}).items() if k not in attributes}
    else:
        inventory = {**(device.inventory or {}), **attributes}
    device.inventory = inventory
    device.last_seen_at = utcnow()
    reported = next((attributes[k] for k in VERSION_ATTRIBUTES if attributes.get(k)), None)
    if data["mode"] != "remove" and reported and SEMVER.match(reported):
        version = str(versions.parse(reported))
        if version != device.current_version:
            service.record_event(
                session(),
                device,
                service.EventReport(
                    event_id=f"ddi-config-{version}"[:64],
                    status=InstallStatus.INSTALLED.value,
                    version=version,
                ),
            )
    return Response(status=200)


@bp.get("/softwaremodules/<int:module_id>/artifacts/<path:filename>")
@writes
@bp.doc(
    security=SECURITY,
    responses={
        200: "the artifact",
        206: "a range of it",
        302: "presigned URL",
        403: "not this device's, withdrawn, or not covered",
        404: "no such artifact",
        416: "bad range",
    },
)
def artifact(tenant: str, controller_id: str, module_id: int, filename: str) -> Response:
    """An action's artifact: resumable (Range, If-Range), or its `.MD5SUM`."""
    _, device = _target(tenant, controller_id)
    release = _release(device, module_id)
    md5sum = filename == release.filename + ".MD5SUM"
    if filename != release.filename and not md5sum:
        raise NotFoundError(f"no artifact {filename} in module {module_id}")
    service.may_download(device, release)
    if md5sum:
        deployments.fill_digests(release, artifact_store())
        return Response(f"{release.artifact_md5}  {release.filename}\n", mimetype="text/plain")
    if starts_a_download():
        service.count_download(session(), release)
    return send_artifact(release, max_age=0)
