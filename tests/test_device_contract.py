"""One HTTP contract for every endpoint a device calls, through the real server.

The same requests (no token, bad token, revoked token, oversized body,
malformed JSON, wrong content type, unknown field, good request, conditional
request) go to each device endpoint of gunicorn serving the demo data, and
each answer is held to one contract: its status, its problem type and its
headers. The update check is answered by the WSGI fast path, the others by
Flask: this is what keeps the two from drifting apart.

The order in which a request is refused (README, "Devices"): first the
request as a message, which costs no database read (413 by its declared
length, 415 by its type, 400 when it is not JSON), then who sends it (401),
then what it says (422).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.gunicorn_server import gunicorn
from tests.helpers.databases import scratch_database
from upgrade_server.clock import utcnow

pytestmark = [pytest.mark.own_app, pytest.mark.slow]

OVERSIZED = 70 * 1024  # past the device edge's 64 KiB


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # {release}, {target}: filled in from the demo's release
    body: dict[str, Any] | None = None  # a good body, for endpoints that take one
    public: bool = False  # answers without a token (a public TUF repository)


def _alarm() -> dict[str, Any]:
    return {
        "alarm_id": uuid.uuid4().hex,
        "code": "E_FAN",
        "level": 2,
        "occurred_at": utcnow().isoformat(),
    }


def _install() -> dict[str, Any]:
    return {"event_id": uuid.uuid4().hex, "status": "downloading"}


ENDPOINTS = {
    "update-check": Endpoint("POST", "/api/device/v1/update-check", {"current_version": "0.9.0"}),
    "device": Endpoint("GET", "/api/device/v1/device"),
    "coverage": Endpoint("GET", "/api/device/v1/coverage"),
    "token": Endpoint("POST", "/api/device/v1/token"),
    "alarms": Endpoint("POST", "/api/device/v1/alarms", {}),
    "installs": Endpoint("POST", "/api/device/v1/installs", {}),
    "notes": Endpoint("GET", "/api/device/v1/releases/{release}"),
    "artifact": Endpoint("GET", "/api/device/v1/releases/{release}/artifact"),
    "tuf-timestamp": Endpoint("GET", "/tuf/edge-gw/metadata/timestamp.json", public=True),
    "tuf-root": Endpoint("GET", "/tuf/edge-gw/metadata/1.root.json", public=True),
    "tuf-target": Endpoint("GET", "/tuf/edge-gw/targets/{target}", public=True),
}
BODY_CASES = ("malformed-json", "wrong-content-type", "unknown-field")
CASES = (
    "no-token",
    "bad-token",
    "revoked-token",
    "oversized-body",
    *BODY_CASES,
    "good",
    "conditional",
)


def _good_body(name: str) -> dict[str, Any] | None:
    endpoint = ENDPOINTS[name]
    if endpoint.body is None:
        return None
    if name == "alarms":
        return _alarm()
    if name == "installs":
        return _install()
    return dict(endpoint.body)


@dataclass
class Answer:
    status: int
    headers: Any
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Edge:
    """The served demo: its URL, the device tokens and the release's paths."""

    def __init__(self, url: str, tokens: dict[str, str], release: int, target: str) -> None:
        self.url = url
        self.tokens = tokens
        self.release = release
        self.target = target
        self.etags: dict[str, str | None] = {}
        self.sent: dict[str, dict[str, Any]] = {}  # the good request's body

    def send(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        path = path.format(release=self.release, target=self.target)
        request = urllib.request.Request(
            self.url + path, data=body, method=method, headers=headers or {}
        )
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(request, timeout=30) as r:
                return Answer(r.status, r.headers, r.read())
        except urllib.error.HTTPError as error:
            return Answer(error.code, error.headers, error.read())


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _load_demo(database_url: str, instance: Path) -> tuple[dict[str, str], int, str]:
    from upgrade_server import create_app
    from upgrade_server.cli.demo import load_demo
    from upgrade_server.config import Settings
    from upgrade_server.extensions import db
    from upgrade_server.migrate import upgrade
    from upgrade_server.releases.models import Release

    upgrade(database_url)
    app = create_app({"SETTINGS": Settings(instance_path=instance, database_url=database_url)})
    with app.app_context():
        shown = load_demo()
        release = db.session.scalars(db.select(Release)).one()
        folder, _, filename = release.target_path.rpartition("/")
        target = f"{folder}/{release.artifact_sha256}.{filename}"
        found = release.id
        db.engine.dispose()
    return shown, found, target


@pytest.fixture(scope="module")
def edge(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    folder = tmp_path_factory.mktemp("contract")
    with scratch_database(database_url, folder) as scratch:
        instance = folder / "instance"
        shown, release, target = _load_demo(scratch, instance)
        with gunicorn(scratch, instance, workers=2) as url:
            tokens = {
                "good": shown["device DEMO-0001"],
                "rotating": shown["device DEMO-0003"],
                "bad": "usd_" + "x" * 40,
            }
            served = Edge(url, tokens, release, target)
            # A token the device itself replaced: revoked.
            old = shown["device DEMO-0002"]
            rotated = served.send("POST", "/api/device/v1/token", None, _bearer(old))
            assert rotated.status == 201, rotated.body
            tokens["revoked"] = old
            yield served


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _request(edge: Edge, name: str, case: str) -> Answer:
    endpoint = ENDPOINTS[name]
    token = edge.tokens["rotating" if name == "token" else "good"]
    headers = {"X-Request-ID": f"contract-{name}-{case}"}
    body = _good_body(name)
    if name == "installs":
        body = {**(body or {}), "release_id": edge.release}
    if case == "conditional" and name in edge.sent:
        body = edge.sent[name]  # the good request again: a retry counts once
    elif case == "good" and body is not None:
        edge.sent[name] = body
    data = json.dumps(body).encode() if body is not None else None
    if data is not None:
        headers["Content-Type"] = "application/json"
    if case == "no-token":
        token = ""
    elif case == "bad-token":
        token = edge.tokens["bad"]
    elif case == "revoked-token":
        token = edge.tokens["revoked"]
    elif case == "oversized-body":
        data = json.dumps({**(body or {}), "padding": "x" * OVERSIZED}).encode()
        headers["Content-Type"] = "application/json"
    elif case == "malformed-json":
        data = b'{"current_version": '
    elif case == "wrong-content-type":
        headers["Content-Type"] = "text/plain"
    elif case == "unknown-field":
        data = json.dumps({**(body or {}), "colour": "red"}).encode()
    elif case == "conditional":
        # The good request's ETag (the good case runs first); else one that matches nothing.
        headers["If-None-Match"] = edge.etags.get(name) or '"no-such-etag"'
    if token:
        headers.update(_bearer(token))
    answer = edge.send(endpoint.method, endpoint.path, data, headers)
    if name == "token" and answer.status == 201:
        edge.tokens["rotating"] = answer.json()["token"]
    if case == "good":
        edge.etags[name] = answer.headers.get("ETag")
    return answer


def _expected(name: str, case: str, edge: Edge) -> tuple[int | tuple[int, ...], str | None]:
    """(status or statuses, problem slug or None) the contract asks for."""
    endpoint = ENDPOINTS[name]
    if case == "no-token":
        return ((200,), None) if endpoint.public else (401, "unauthenticated")
    if case in ("bad-token", "revoked-token"):
        return 401, "unauthenticated"
    if case == "oversized-body":
        return 413, "payload-too-large"
    if case == "malformed-json":
        return 400, "bad-request"
    if case == "wrong-content-type":
        return 415, "unsupported-media-type"
    if case == "unknown-field":
        return 422, "invalid-input"
    if case == "conditional" and edge.etags.get(name):
        return 304, None
    return (200, 201, 202, 204), None


PARAMS = [
    pytest.param(name, case, id=f"{name}-{case}")
    for name, endpoint in ENDPOINTS.items()
    for case in CASES
    if endpoint.body is not None or case not in BODY_CASES
]


@pytest.mark.parametrize(("name", "case"), PARAMS)
def test_every_device_endpoint_keeps_one_contract(edge: Edge, name: str, case: str) -> None:
    answer = _request(edge, name, case)
    status, slug = _expected(name, case, edge)
    statuses = status if isinstance(status, tuple) else (status,)
    assert answer.status in statuses, (answer.status, answer.body[:500])
    # The same headers on every answer, from either path.
    assert answer.headers.get("X-Request-ID") == f"contract-{name}-{case}"
    assert answer.headers.get("X-Content-Type-Options") == "nosniff"
    if slug is None:
        return
    assert answer.headers.get_content_type() == "application/problem+json"
    document = answer.json()
    assert document["type"] == f"/problems/{slug}"
    assert document["status"] == answer.status
    assert document["title"] and document["detail"]
    if answer.status == 401:
        assert answer.headers.get("WWW-Authenticate") == 'Bearer realm="device API"'
    else:
        assert "WWW-Authenticate" not in answer.headers


def test_good_answers_with_an_etag_are_conditional(edge: Edge) -> None:
    """The update check, the TUF metadata and targets and the artifact carry
    an ETag; sent back in If-None-Match, the answer is a 304."""
    for name in ("update-check", "artifact", "tuf-timestamp", "tuf-root", "tuf-target"):
        good = _request(edge, name, "good")
        assert good.headers.get("ETag"), name
        assert _request(edge, name, "conditional").status == 304, name


@pytest.mark.parametrize("name", [n for n, e in ENDPOINTS.items() if e.body is not None])
def test_a_chunked_body_past_the_limit_is_refused_as_a_declared_one(edge: Edge, name: str) -> None:
    """Without a Content-Length the limit holds as the body is read."""
    padding = json.dumps({"padding": "x" * OVERSIZED}).encode()
    chunks = iter([padding[i : i + 8192] for i in range(0, len(padding), 8192)])
    headers = {
        "Content-Type": "application/json",
        "Transfer-Encoding": "chunked",
        "X-Request-ID": f"contract-{name}-chunked",
        **_bearer(edge.tokens["good"]),
    }
    answer = edge.send(ENDPOINTS[name].method, ENDPOINTS[name].path, chunks, headers)  # type: ignore[arg-type]
    assert answer.status == 413, answer.body[:300]
    assert answer.json()["type"] == "/problems/payload-too-large"
    assert answer.headers.get("X-Request-ID") == f"contract-{name}-chunked"
