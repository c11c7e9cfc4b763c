"""An organisation's hawkBit gateway tokens in the console (admins): listed
on its page by their first characters, issued with the secret shown once on
the answer to the POST (neither stored nor redirected to), revoked at once.
Through the same service as the API and the CLI (devices.gateway_tokens)."""

from __future__ import annotations

from typing import Any

from flask import redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from upgrade_server.accounts.roles import Permission
from upgrade_server.console.organisation_pages import refused
from upgrade_server.console.views import bp, require
from upgrade_server.devices import gateway_tokens
from upgrade_server.errors import AppError
from upgrade_server.extensions import session as db_session
from upgrade_server.organisations import service as organisation_service


@bp.post("/organisations/<int:organisation_id>/gateway-tokens")
def organisations_gateway_token_issue(organisation_id: int) -> Any:
    """Issue a gateway token for the organisation; the page shows its secret once."""
    actor = require(Permission.ORGANISATION_WRITE)
    session = db_session()
    try:
        organisation = organisation_service.get_organisation(session, actor, organisation_id)
        issued = gateway_tokens.issue_gateway_token(
            session, actor, organisation, request.form.get("name", "")
        )
    except AppError as error:
        return refused(organisation_id, error, "gateway")
    session.commit()
    page = render_template(
        "console/organisations/gateway_token_issued.html",
        organisation=organisation,
        token=issued.token,
        secret=issued.secret,
        poll_url=url_for(
            "ddi.base_poll", tenant=organisation.slug, controller_id="SERIAL", _external=True
        ).replace("SERIAL", "<serial>"),
    )
    return page, 201


@bp.post("/organisations/<int:organisation_id>/gateway-tokens/<int:token_id>/revoke")
def organisations_gateway_token_revoke(organisation_id: int, token_id: int) -> BaseResponse:
    """Revoke one of the organisation's gateway tokens; it stops working at once."""
    actor = require(Permission.ORGANISATION_WRITE)
    session = db_session()
    organisation = organisation_service.get_organisation(session, actor, organisation_id)
    gateway_tokens.revoke_gateway_token(session, actor, token_id, organisation)
    session.commit()
    target = url_for("console.organisations_detail", organisation_id=organisation_id)
    return redirect(f"{target}#gateway")
