"""support's rules on identity's answers (pure functions: no bus, no database)."""
import pytest

from kc_common.errors import Forbidden
from kc_support import domain

CONTACT = {"authorised": True, "kind": "contact", "contact_id": 7, "name": "Petra Partner",
           "email": "petra@agentur.example"}
STRANGER = {"authorised": False, "kind": None, "contact_id": None, "name": "Mallory", "email": None}


def test_an_authorised_contact_writes_under_the_name_identity_knows():
    assert domain.authorised_author(CONTACT, "petra partner") == {
        "name": "Petra Partner", "kind": "contact", "contact_id": 7, "email": "petra@agentur.example"}


def test_an_unknown_name_is_refused_naming_the_field():
    with pytest.raises(Forbidden) as err:
        domain.authorised_author(STRANGER, "Mallory")
    assert "„Mallory“ ist für dieses Kundenkonto nicht berechtigt" in str(err.value)
    assert err.value.to_body()["fields"] == {"name": [domain.NOT_A_CONTACT]}


@pytest.mark.parametrize("contact, check, fields", [
    (STRANGER, {"verified": True}, {"caller_name"}),
    (CONTACT, {"verified": False}, {"phone_password"}),
    (STRANGER, {}, {"caller_name", "phone_password"}),
])
def test_a_caller_not_verified_is_refused_naming_what_failed(contact, check, fields):
    with pytest.raises(Forbidden) as err:
        domain.require_verified_caller(*domain.caller_check(contact, check))
    assert set(err.value.to_body()["fields"]) == fields


def test_a_verified_caller_passes():
    assert domain.caller_check(CONTACT, {"verified": True}) == (True, True)
    domain.require_verified_caller(True, True)
