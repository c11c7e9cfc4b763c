"""Tickets: faults, their deadlines, reports and notifications."""

# Connects the notification outbox to the tickets' events (see events.py).
from upgrade_server.tickets import notify as _notify  # noqa: F401
