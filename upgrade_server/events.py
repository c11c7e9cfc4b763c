"""Domain events: what a domain tells the domains built on it.

A domain whose change others keep a consequence of (the coverage stored per
device, a ticket's notifications) publishes an event here rather than
importing them: the import would point upward and close a circle.

Each event is a blinker signal. The publisher sends it with its session as
the sender, after flushing the change; listeners run synchronously, in the
publisher's session and transaction, so what they write commits or rolls back
with the change that caused it, and an error in a listener fails the change.
A listener's package connects it when it is imported (see its __init__);
create_app imports every domain, so every path that changes the data (API,
portal, CLI, background jobs) has its listeners.
"""

from __future__ import annotations

from blinker import Namespace

_events = Namespace()

devices_changed = _events.signal(
    "devices-changed",
    doc="Devices were provisioned or changed (a delivery or acceptance date, their "
    "organisation, ...). Payload: devices (list[Device]).",
)

product_terms_changed = _events.signal(
    "product-terms-changed",
    doc="A product's coverage terms changed. Payload: product (Product).",
)

organisation_timezone_changed = _events.signal(
    "organisation-timezone-changed",
    doc="An organisation's time zone changed (its devices' coverage days are its "
    "calendar days). Payload: organisation (Organisation).",
)

ticket_urgency_changed = _events.signal(
    "ticket-urgency-changed",
    doc="A ticket was opened, or its level or emergency changed. Payload: ticket (Ticket).",
)

install_outcome = _events.signal(
    "install-outcome",
    doc="A device reported how an install of a release ended (installed, failed or "
    "rolled back). Payload: event (InstallEvent).",
)
