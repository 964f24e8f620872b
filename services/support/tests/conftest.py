import pytest
from nameko.rpc import rpc


@pytest.fixture
def config(service_config_factory):
    """nameko config for kc_support on this test's vhost and the run's (emptied) database."""
    return service_config_factory("kc_support")


# identity as the contract (docs/contracts.md) describes it, stubbed on the real bus so that
# support's tests need neither identity's database nor its vault.
CUSTOMERS = {
    100001: {"first_name": "Max", "last_name": "Mustermann", "email": "max@kunde.example"},
    100002: {"first_name": "Erika", "last_name": "Musterfrau", "email": "erika@kunde.example"},
}
CONTACTS = {100001: {"Petra Partner": {"contact_id": 7, "email": "petra@agentur.example"}}}
OPTED_OUT = {100002}          # no optional support_updates mail
PHONE_PASSWORDS = {100001: "Blauer-Elefant-42"}


class IdentityStub:
    name = "identity"

    @rpc
    def check_contact(self, customer_id, name, purpose):
        assert purpose == "support"
        customer = CUSTOMERS.get(customer_id)
        full = f"{customer['first_name']} {customer['last_name']}" if customer else None
        if customer and " ".join(name.split()).lower() == full.lower():
            return {"authorised": True, "kind": "customer", "contact_id": None, "name": full,
                    "email": customer["email"]}
        contact = CONTACTS.get(customer_id, {}).get(name)
        if contact:
            return {"authorised": True, "kind": "contact", "name": name, **contact}
        return {"authorised": False, "kind": None, "contact_id": None, "name": name, "email": None}

    @rpc
    def notification_allowed(self, customer_id, topic):
        return customer_id not in OPTED_OUT

    @rpc
    def verify_phone_password(self, customer_id, password):
        return {"verified": PHONE_PASSWORDS.get(customer_id) == password}

    @rpc
    def get_customer(self, customer_id):
        return dict(CUSTOMERS[customer_id], customer_id=customer_id)
