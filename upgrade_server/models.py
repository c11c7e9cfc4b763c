"""Imports every model so that the metadata is complete (for Alembic and tests)."""

from upgrade_server.accounts.models import ApiToken, User
from upgrade_server.audit.models import AuditEntry, AuditHead
from upgrade_server.devices.models import Device, DeviceToken
from upgrade_server.entitlements.models import Contract, CoverageOverride
from upgrade_server.organisations.models import Organisation
from upgrade_server.products.models import HardwareRevision, Product
from upgrade_server.releases.models import Channel, Release, ReleaseChannel
from upgrade_server.rollouts.models import Rollout, RolloutDecision, RolloutDevice
from upgrade_server.rollouts.settings_models import MaintenanceWindowSetting, ReleaseApproval
from upgrade_server.service.models import ServiceRequest, ServiceSession
from upgrade_server.signing.models import MetadataFile, Repository, SigningKey, SigningRequest
from upgrade_server.sites.models import Site
from upgrade_server.tickets.models import (
    Alarm,
    IncidentReport,
    Ticket,
    TicketBreach,
    TicketPause,
)
from upgrade_server.tickets.notify import Notification
from upgrade_server.updates.models import InstallEvent
from upgrade_server.workdays.models import WorkingDayException

__all__ = [
    "Alarm",
    "ApiToken",
    "AuditEntry",
    "AuditHead",
    "Channel",
    "Contract",
    "CoverageOverride",
    "Device",
    "DeviceToken",
    "HardwareRevision",
    "IncidentReport",
    "InstallEvent",
    "MaintenanceWindowSetting",
    "MetadataFile",
    "Notification",
    "Organisation",
    "Product",
    "Release",
    "ReleaseApproval",
    "ReleaseChannel",
    "Repository",
    "Rollout",
    "RolloutDecision",
    "RolloutDevice",
    "ServiceRequest",
    "ServiceSession",
    "SigningKey",
    "SigningRequest",
    "Site",
    "Ticket",
    "TicketBreach",
    "TicketPause",
    "User",
    "WorkingDayException",
]
