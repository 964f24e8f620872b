"""Pure rules of identity (no bus, no database)."""
import pytest
from cryptography.fernet import Fernet

from kc_identity import address, av, netlist, policy
from kc_identity.vault import Vault

GOOD = {"company": "Beispiel GmbH", "last_name": "Mustermann", "first_name": "Max",
        "email": "Max@Beispiel.DE", "street": "Hauptstraße 1", "zip": "10115", "city": "Berlin",
        "country": "de", "phone": "030 1234567", "fax": "", "mobile": "0171 2345678", "vat_id": "DE 123456788"}


def test_a_good_address_is_normalised():
    cleaned, errors = address.clean(GOOD)
    assert errors == {}
    assert cleaned["email"] == "max@beispiel.de" and cleaned["country"] == "DE"
    assert cleaned["phone"] == "+49301234567" and cleaned["mobile"] == "+491712345678"
    assert cleaned["fax"] is None and cleaned["vat_id"] == "DE123456788"


@pytest.mark.parametrize("country, zip_code, phone, ok", [
    ("DE", "1011", "030 1234567", False), ("AT", "1010", "01 5123456", True), ("AT", "10115", "01 5123456", False),
    ("CH", "8001", "044 668 18 00", True), ("NL", "1012 ab", "020 123 4567", True), ("NL", "1012", "020 123 4567", False),
    ("FR", "75001", "01 23 45 67 89", True), ("GB", "SW1A 1AA", "020 7946 0958", True),
])
def test_postal_codes_and_phones_follow_the_country(country, zip_code, phone, ok):
    _, errors = address.clean(dict(GOOD, country=country, zip=zip_code, phone=phone, mobile="", vat_id=""))
    assert (errors == {}) is ok, errors
    if not ok:
        assert list(errors) == ["zip"]


def test_every_bad_field_gets_its_own_message():
    _, errors = address.clean({"last_name": " ", "first_name": "Max", "email": "kein-at-zeichen",
                               "street": "x", "zip": "ABCDE", "city": "Berlin", "country": "DE",
                               "phone": "12", "mobile": "abc", "vat_id": "DE1"})
    assert set(errors) == {"last_name", "email", "zip", "phone", "mobile", "vat_id"}
    assert all(isinstance(m, str) and m for msgs in errors.values() for m in msgs)


def test_password_policy():
    assert policy.service_password_problems("kurz") != []
    assert policy.service_password_problems("password1234") != []            # common
    assert policy.service_password_problems("x100001-Blau-Wal!", customer_id=100001) != []
    assert policy.service_password_problems("max.muster-Blau-Wal", email="max.muster@example.org") != []
    assert policy.service_password_problems("Korallen-Fuchs-Teich-81") == []


def test_whitelist_entries_and_matching():
    nets, errors = netlist.normalise(["192.0.2.7", "198.51.100.0/24", "2001:db8::/32", "198.51.100.0/24"])
    assert errors == {} and nets == ["192.0.2.7/32", "198.51.100.0/24", "2001:db8::/32"]
    assert netlist.allows(nets, "198.51.100.77") and netlist.allows(nets, "2001:db8::1")
    assert netlist.allows(nets, "::ffff:192.0.2.7")
    assert not netlist.allows(nets, "203.0.113.1") and not netlist.allows(nets, None)
    assert netlist.allows([], "203.0.113.1")
    _, errors = netlist.normalise(["10.0.0.1", "999.1.1.1", "0.0.0.0/0", "nonsense"])
    assert set(errors) == {"entries.1", "entries.2", "entries.3"}


def test_vault_rotation_keeps_old_values_readable():
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    token = Vault(old).encrypt("Elbe-Kran-42")
    assert "Elbe" not in token
    rotated = Vault(f"{new},{old}").rotate(token)
    assert Vault(new).decrypt(rotated) == "Elbe-Kran-42"
    with pytest.raises(RuntimeError):
        Vault(Fernet.generate_key().decode()).decrypt(token)
    with pytest.raises(RuntimeError):
        Vault("")


def test_av_current_version_is_the_last():
    assert av.current() is av.VERSIONS[-1] and av.current().text.startswith("Vereinbarung")
    assert len(av.current().sha256) == 64


def test_totp_codes_work_once_within_the_drift_window():
    import pyotp

    from kc_identity import twofactor
    secret = twofactor.new_secret()
    now = 1_800_000_000
    totp = pyotp.TOTP(secret)
    step = twofactor.match_totp(secret, totp.at(now), now=now)
    assert step == now // 30
    assert twofactor.match_totp(secret, totp.at(now), last_step=step, now=now) is None   # replay
    assert twofactor.match_totp(secret, totp.at(now + 30), last_step=step, now=now) == step + 1
    assert twofactor.match_totp(secret, totp.at(now - 120), now=now) is None
    assert twofactor.match_totp(secret, "12345", now=now) is None
    codes = twofactor.new_recovery_codes()
    assert len(set(codes)) == 10
    assert twofactor.hash_recovery_code(codes[0].upper().replace("-", " ")) == twofactor.hash_recovery_code(codes[0])
