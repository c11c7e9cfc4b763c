"""Test data built through the services, as the API would build it."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from upgrade_server.accounts import service as accounts
from upgrade_server.accounts.models import User
from upgrade_server.accounts.principal import Principal
from upgrade_server.accounts.roles import CUSTOMER_ROLES, Role
from upgrade_server.devices import provisioning
from upgrade_server.devices.models import Device
from upgrade_server.organisations import service as organisations
from upgrade_server.organisations.models import Organisation
from upgrade_server.products import service as products
from upgrade_server.products.models import Product

_seq = itertools.count(1)


@dataclass
class Caller:
    user: User
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Factory:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.cli = Principal.cli()

    def organisation(self, **kw: Any) -> Organisation:
        n = next(_seq)
        data: dict[str, Any] = {"slug": f"org-{n}", "name": f"Organisation {n}"}
        data.update(kw)
        return organisations.create_organisation(self.session, self.cli, **data)

    def product(self, revisions: tuple[str, ...] = ("rev-a", "rev-b"), **kw: Any) -> Product:
        n = next(_seq)
        data: dict[str, Any] = {"code": f"prod-{n}", "name": f"Product {n}"}
        data.update(kw)
        return products.create_product(
            self.session,
            self.cli,
            hardware_revisions=[{"code": r} for r in revisions],
            **data,
        )

    def user(self, role: Role | str, organisation: Organisation | None = None, **kw: Any) -> User:
        role = Role(role)
        if role not in CUSTOMER_ROLES:
            organisation = None
        elif organisation is None:
            organisation = self.organisation()
        n = next(_seq)
        data: dict[str, Any] = {"email": f"user{n}@example.test", "name": f"User {n}"}
        data.update(kw)
        return accounts.create_user(
            self.session,
            self.cli,
            role=role.value,
            organisation_id=organisation.id if organisation else None,
            **data,
        )

    def caller(self, role: Role | str, organisation: Organisation | None = None) -> Caller:
        user = self.user(role, organisation)
        issued = accounts.create_api_token(self.session, self.cli, name="test", user_id=user.id)
        self.session.commit()
        return Caller(user, issued.secret)

    def device(
        self,
        organisation: Organisation | None = None,
        product: Product | None = None,
        **kw: Any,
    ) -> tuple[Device, str]:
        organisation = organisation or self.organisation()
        product = product or self.product()
        data: dict[str, Any] = {
            "serial": f"SN-{next(_seq):06d}",
            "product": product.code,
            "hardware_revision": product.hardware_revisions[0].code,
            "organisation": organisation.slug,
        }
        data.update(kw)
        provisioned = provisioning.create_device(self.session, self.cli, data)
        self.session.commit()
        return provisioned.device, provisioned.secret
