"""Promote, withdraw and roll out a release, each confirmed first.

A GET shows what will happen, counted (release_reach.py): how many devices
would be offered the release, or are offered it and part-way through it;
only the confirmation's POST acts, through the same services as the API
(releases.service, rollouts.service) with the staff member as the actor.
A refusal shows the page again with its reason; nothing is half done (the
error status rolls the request's work back).
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from flask import redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response as BaseResponse

from upgrade_server.accounts.roles import Permission
from upgrade_server.console import release_reach as reach
from upgrade_server.console.views import bp, require
from upgrade_server.errors import AppError
from upgrade_server.extensions import current_settings, session
from upgrade_server.releases import service as releases
from upgrade_server.releases.models import Release, ReleaseStatus
from upgrade_server.rollouts import service as rollouts
from upgrade_server.rollouts.plan import BUCKETS, Gates
from upgrade_server.signing.service import repository_for
from upgrade_server.web import problems

DEFAULT_WAVES = "1, 10, 100"
# The gates a person sets on the form, in the units they think in.
GATE_FIELDS = ("soak_hours", "min_success_percent", "stop_failure_percent")


def _release(release_id: int) -> Release:
    return releases.get_release(session(), require(Permission.RELEASE_PUBLISH), release_id)


def _sentence(error: AppError) -> tuple[int, str]:
    """The refusal's status and words; the page after it reads what is, not
    the refused half (the error status would roll it back anyway)."""
    session().rollback()
    return problems.for_error(error, f"{request.method} {request.path}")


def _back(release: Release) -> BaseResponse:
    return redirect(url_for("console.releases_detail", release_id=release.id), 303)


def _channel_ranks(release: Release) -> dict[str, int]:
    return {c.name: c.rank for c in releases.channels(session(), release.product)}


# --- promote -------------------------------------------------------------------------------


@bp.route("/releases/<int:release_id>/promote", methods=["GET", "POST"])
def releases_promote(release_id: int) -> Any:
    release = _release(release_id)
    source = request.form if request.method == "POST" else request.args
    channel = source.get("channel", "")
    ranks = _channel_ranks(release)
    error = None
    status = 200
    if request.method == "POST":
        try:
            repository = repository_for(session(), release.product, current_settings())
            actor = require(Permission.RELEASE_PUBLISH)
            releases.promote_release(session(), actor, release, channel, repository)
        except AppError as exc:
            status, error = _sentence(exc)
        else:
            return _back(release)
    if channel not in ranks:
        error, status = _("Choose one of the product's channels."), 422
    now = reach.top_rank(release)
    fleet = reach.fleet(session(), release)
    after = max(now if now is not None else -1, ranks.get(channel, -1))
    return render_template(
        "console/releases/promote.html",
        release=release,
        channel=channel,
        channels=[c for c in ranks if c not in release.channel_names],
        offered_after=fleet.offered(after),
        offered_now=fleet.offered(now),
        error=error,
    ), status


# --- withdraw ------------------------------------------------------------------------------


@bp.route("/releases/<int:release_id>/withdraw", methods=["GET", "POST"])
def releases_withdraw(release_id: int) -> Any:
    release = _release(release_id)
    reason = request.form.get("reason", "").strip()
    error = None
    status = 200
    if request.method == "POST":
        try:
            if not reason or len(reason) > MAX_REASON:
                error, status = (
                    _("Say why the release is withdrawn, in 2000 characters at most."),
                    422,
                )
            else:
                repository = repository_for(session(), release.product, current_settings())
                releases.withdraw_release(
                    session(), require(Permission.RELEASE_PUBLISH), release, reason, repository
                )
                return _back(release)
        except AppError as exc:
            status, error = _sentence(exc)
    published = release.status == ReleaseStatus.PUBLISHED.value
    fleet = reach.fleet(session(), release)
    top = reach.top_rank(release)
    return render_template(
        "console/releases/withdraw.html",
        release=release,
        offered=fleet.offered(top) if published else 0,
        installing=reach.installing(session(), release),
        running=fleet.running(top),
        reason=reason,
        error=error,
    ), status


# --- rollout -------------------------------------------------------------------------------


def parse_waves(text: str) -> list[int] | None:
    """'1, 10, 100' (cumulative percentages) as shares in basis points; None
    when it is not a rising list of percentages ending at 100."""
    shares = []
    for part in text.replace("%", "").replace("，", ",").split(","):
        part = part.strip()
        try:
            percent = float(part)
        except ValueError:
            return None
        if not 0 <= percent <= 100:
            return None
        shares.append(round(percent * BUCKETS / 100))
    # As the service will insist: each wave further than the last, the last all.
    if not shares or shares[-1] != BUCKETS or any(a >= b for a, b in pairwise(shares)):
        return None
    return shares


# Bounds of the form's gates: hours up to the API's 90 days, percentages.
GATE_BOUNDS = {"soak_hours": 90 * 24.0, "min_success_percent": 100.0, "stop_failure_percent": 100.0}
MAX_REASON = 2000


def _number(value: str, high: float) -> float | None:
    """A number from 0 to `high` as typed, else None (NaN and infinities too)."""
    try:
        number = float(value)
    except ValueError:
        return None
    return number if 0 <= number <= high else None


def rollout_input(form: Any, hardware: list[str]) -> tuple[dict[str, Any] | None, list[str]]:
    """The rollout the form asks for, as the API's start takes it, or the
    form's mistakes (the service checks everything again)."""
    mistakes: list[str] = []
    shares = parse_waves(form.get("waves", ""))
    if shares is None:
        mistakes.append(
            _("Waves: rising percentages separated by commas, ending at 100, such as 1, 10, 100.")
        )
    gates: dict[str, Any] = {"auto_advance": form.get("auto_advance") == "1"}
    numbers = {name: _number(form.get(name, ""), GATE_BOUNDS[name]) for name in GATE_FIELDS}
    if any(v is None for v in numbers.values()):
        mistakes.append(_("Gates: hours up to 2160, percentages from 0 to 100."))
    else:
        gates["min_soak_seconds"] = round((numbers["soak_hours"] or 0) * 3600)
        gates["min_success_rate"] = min(1.0, (numbers["min_success_percent"] or 0) / 100)
        gates["stop_failure_rate"] = min(1.0, (numbers["stop_failure_percent"] or 0) / 100)
    excluded = [h for h in form.getlist("excluded_hardware") if h in hardware]
    if mistakes or shares is None:
        return None, mistakes
    return {
        "channel": form.get("channel", ""),
        "waves": [{"share": s} for s in shares],
        "gates": gates,
        "excluded_hardware": excluded,
    }, []


def _form_defaults(release: Release) -> dict[str, Any]:
    gates = Gates()
    return {
        "channel": release.channel_names[-1] if release.channel_names else "",
        "waves": DEFAULT_WAVES,
        "soak_hours": f"{gates.min_soak_seconds / 3600:g}",
        "min_success_percent": f"{gates.min_success_rate * 100:g}",
        "stop_failure_percent": f"{gates.stop_failure_rate * 100:g}",
        "auto_advance": gates.auto_advance,
        "excluded_hardware": [],
    }


def _entered(form: Any) -> dict[str, Any]:
    return {
        "channel": form.get("channel", ""),
        "waves": form.get("waves", ""),
        **{name: form.get(name, "") for name in GATE_FIELDS},
        "auto_advance": form.get("auto_advance") == "1",
        "excluded_hardware": form.getlist("excluded_hardware"),
    }


@bp.route("/releases/<int:release_id>/rollout", methods=["GET", "POST"])
def releases_rollout(release_id: int) -> Any:
    """The rollout form; `review` shows what it will do; the POST starts it."""
    release = _release(release_id)
    ranks = _channel_ranks(release)
    hardware = list(release.hardware_revisions)
    posted = request.method == "POST"
    reviewing = posted or request.args.get("review") == "1"
    source = request.form if posted else request.args
    values = _entered(source) if reviewing else _form_defaults(release)
    data, mistakes = rollout_input(source, hardware) if reviewing else (None, [])
    if reviewing and values["channel"] not in ranks:
        mistakes.append(_("Choose one of the product's channels."))
    error, status = None, 200
    if posted and data is not None and not mistakes:
        try:
            repository = repository_for(session(), release.product, current_settings())
            rollouts.start_rollout(
                session(), require(Permission.RELEASE_PUBLISH), release, data, repository
            )
        except AppError as exc:
            status, error = _sentence(exc)
        else:
            return _back(release)
    if mistakes:
        status = 422
    review = None
    if reviewing and data is not None and not mistakes:
        fleet = reach.fleet(session(), release, data["excluded_hardware"])
        eligible = fleet.offered(ranks[values["channel"]])
        first = data["waves"][0]["share"]
        review = {
            "eligible": eligible,
            "first": reach.first_wave_share(eligible, first),
            "first_percent": f"{first / 100:g}",
            "waves": [f"{w['share'] / 100:g}" for w in data["waves"]],
        }
    return render_template(
        "console/releases/rollout.html",
        release=release,
        channels=list(ranks),
        hardware=hardware,
        values=values,
        review=review,
        mistakes=mistakes,
        error=error,
    ), status
