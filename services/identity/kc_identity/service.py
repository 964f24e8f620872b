"""identity's entrypoints: thin; the rules live in ``domain``."""
import datetime as dt

from nameko.dependency_providers import Config
from sqlalchemy import select

from kc_common.context import CallContext
from kc_common.db import Database
from kc_common.errors import NotFound, Unauthenticated
from kc_common.rpc import PingMixin, rpc
from kc_common.schemas import load
from kc_identity import domain, schemas
from kc_identity.models import customers, metadata


class IdentityService(PingMixin):
    name = "identity"

    db = Database(metadata)
    context = CallContext()
    config = Config()

    @property
    def _idle(self):
        return dt.timedelta(minutes=float(self.config.get("SESSION_IDLE_MINUTES", 60)))

    @property
    def _absolute(self):
        return dt.timedelta(hours=float(self.config.get("SESSION_ABSOLUTE_HOURS", 12)))

    @rpc(sensitive_arguments=("data.password",))
    def login(self, data):
        data = load(schemas.LoginSchema(), data)
        with self.db.unit_of_work() as uow:
            result = domain.login(uow.session, client_ip=self.context.client_ip,
                                  idle=self._idle, absolute=self._absolute, **data)
        return schemas.SessionSchema().dump(result)

    @rpc(sensitive_arguments=("token",))
    def authenticate(self, token):
        with self.db.unit_of_work() as uow:
            return domain.authenticate(uow.session, token=token, idle=self._idle)

    @rpc(sensitive_arguments=("data.password",))
    def staff_login(self, data):
        data = load(schemas.LoginSchema(), data)
        with self.db.unit_of_work() as uow:
            result = domain.staff_login(uow.session, client_ip=self.context.client_ip,
                                        idle=self._idle, absolute=self._absolute, **data)
        return schemas.StaffSessionSchema().dump(result)

    @rpc
    def logout(self):
        """End the caller's current session (customer or staff)."""
        if self.context.session_id is None:
            raise Unauthenticated("Bitte melden Sie sich an.")
        with self.db.unit_of_work() as uow:
            domain.end_session(uow.session, self.context.session_id)

    @rpc
    def get_me(self):
        customer_id = self.context.require_customer()
        with self.db.unit_of_work() as uow:
            row = uow.session.execute(select(customers).where(customers.c.id == customer_id)).first()
        if row is None:
            raise NotFound("Kunde nicht gefunden.")
        return schemas.CustomerSchema().dump({**row._mapping, "customer_id": row.id})

    # --- internal RPCs for other services (see docs/contracts.md) -------------------------

    @rpc
    def get_customer(self, customer_id):
        with self.db.unit_of_work() as uow:
            row = uow.session.execute(select(customers).where(customers.c.id == customer_id)).first()
        if row is None:
            raise NotFound("Kunde nicht gefunden.")
        return domain.customer_view(row)

    @rpc
    def check_contact(self, customer_id, name, purpose):
        """May ``name`` speak for the customer about ``purpose`` (support/billing)?"""
        with self.db.unit_of_work() as uow:
            return domain.check_contact(uow.session, customer_id, name, purpose)

    @rpc
    def notification_allowed(self, customer_id, topic):
        with self.db.unit_of_work() as uow:
            return domain.notification_allowed(uow.session, customer_id, topic)
