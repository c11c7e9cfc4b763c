"""The apps the OpenAPI document does not describe (the portal's pages and
forms, the TUF repository) fuzzed with hypothesis: any path segment, query or
form value, logged in or not, gets a 2xx, 3xx or 4xx, never a 5xx."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.helpers.portal import PASSWORD, csrf, login
from upgrade_server.accounts import service as accounts
from upgrade_server.extensions import db

# Whatever a client can put in a URL or a form: digits of any length, unicode,
# control characters, percent-escapes and path tricks.
segments = st.one_of(
    st.text(min_size=1, max_size=40),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.sampled_from(["..", "%00", "%2e%2e", "1.root.json", "9" * 40, "٣", "²", "\x00"]),
)
values = st.one_of(st.text(max_size=60), segments)
FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

TICKET, REQUEST = "/portal/tickets/new", "/portal/service/requests/new"
PAGES = [
    "/portal/devices/{}",
    "/portal/devices/{}/record",
    "/portal/releases/{}",
    "/portal/releases/{}/notes.{}",
    "/portal/releases/{}/artifact",
    "/portal/products/{}/releases",
    "/portal/products/{}/changelog",
    "/portal/tickets/{}/report",
    "/tuf/{}/metadata/{}",
    "/tuf/{}/targets/{}",
]


@pytest.fixture
def customer(client, factory):
    org = factory.organisation()
    factory.device(organisation=org)
    user = factory.user("customer-admin", org, email="fuzz@customer.test")
    user.password_hash = accounts.hash_password(PASSWORD)
    db.session.commit()
    assert login(client, "fuzz@customer.test").status_code == 302
    return client


def _not_a_server_error(response) -> None:
    assert response.status_code < 500, response.get_data(as_text=True)[:500]


@FUZZ
@given(page=st.sampled_from(PAGES), first=segments, second=segments, query=values)
def test_pages_and_tuf_paths(customer, page, first, second, query):
    url = page.format(quote(first, safe=""), quote(second, safe=""))
    for asked in (url, f"{url}?lang={quote(query)}&from={quote(query)}&to=1.0.0&format=pdf"):
        _not_a_server_error(customer.get(asked))


@FUZZ
@given(
    form=st.fixed_dictionaries(
        {
            "title": st.one_of(st.just("No link since the storm"), values),
            "level": st.one_of(st.sampled_from(["1", "4", "5"]), values),
            "device_ids": st.lists(segments, max_size=3),
        },
        optional={"description": values, "contact": values},
    ),
    target=st.sampled_from([TICKET, REQUEST]),
)
# Found once: "²" is a digit to str.isdigit() but not to int().
@example(form={"title": "t", "level": "1", "device_ids": ["²", "9" * 40]}, target=TICKET)
@example(form={"title": "t", "device_ids": ["٣", "9" * 5000]}, target=REQUEST)
def test_portal_forms(customer, form, target):
    form["csrf_token"] = csrf(customer.get(target).get_data(as_text=True))
    _not_a_server_error(customer.post(target, data=form))


@FUZZ
@given(email=values, password=values, next_page=values)
def test_login_form(client, email, password, next_page):
    token = csrf(client.get("/portal/login").get_data(as_text=True))
    r = client.post(
        "/portal/login",
        query_string={"next": next_page},
        data={"email": email, "password": password, "csrf_token": token},
    )
    _not_a_server_error(r)
