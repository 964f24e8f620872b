"""Pure logic of kc_common (no bus, no database)."""
from decimal import Decimal

import pytest
from marshmallow import fields
from nameko.exceptions import deserialize, serialize

from kc_common.errors import NotFound, ValidationFailed
from kc_common.schemas import BaseSchema, load, money


@pytest.mark.parametrize("raw, expected", [
    ("0.005", "0.01"), ("0.004", "0.00"), ("2.675", "2.68"), ("-0.005", "-0.01"), ("10", "10.00"),
])
def test_money_rounds_half_up_to_the_cent(raw, expected):
    assert money(Decimal(raw)) == Decimal(expected)


class _S(BaseSchema):
    zip = fields.String(required=True)


def test_load_names_each_bad_field():
    with pytest.raises(ValidationFailed) as err:
        load(_S(), {"extra": 1})
    assert set(err.value.fields) == {"zip", "extra"}
    assert err.value.to_body()["error"] == "validation_failed"


def test_load_refuses_a_non_object():
    with pytest.raises(ValidationFailed):
        load(_S(), ["zip"])


def test_typed_errors_cross_the_wire_as_themselves():
    for exc in (NotFound("weg", {"id": "3"}), ValidationFailed(fields={"a": ["b"]})):
        back = deserialize(serialize(exc))
        assert type(back) is type(exc) and back.to_body() == exc.to_body()


def test_settings_fail_fast_naming_the_setting():
    from marshmallow import Schema

    from kc_common.settings import SettingsError, validate_settings

    class Needs(Schema):
        SELLER_VAT_ID = fields.String(required=True)
        RETRIES = fields.Integer(load_default=3)

    assert validate_settings(Needs, {"SELLER_VAT_ID": "DE123", "OTHER": 1}) == {
        "SELLER_VAT_ID": "DE123", "RETRIES": 3}
    with pytest.raises(SettingsError, match="SELLER_VAT_ID"):
        validate_settings(Needs, {"RETRIES": "x"})


def test_one_seller_source_with_overrides_and_the_statutory_lines():
    from kc_common.seller import legal_lines, mail_signature, seller_from_config
    seller = seller_from_config({}, environ={})
    assert seller["street"] == "Hosting-Allee 1" and seller["register_court"] == "Amtsgericht Hannover"
    moved = seller_from_config({"SELLER_STREET": "Neue Straße 2"}, environ={"SELLER_STREET": "ignored",
                                                                          "SELLER_IBAN": "DE89 3704 0044 0532 0130 00"})
    assert moved["street"] == "Neue Straße 2" and moved["iban"] == "DE89370400440532013000"
    lines = legal_lines(seller)
    assert lines[1] == ("Sitz: Hannover · Amtsgericht Hannover HRB 123456 · "
                        "Geschäftsführer: Max Mustermann, Erika Beispiel")
    assert "USt-IdNr. DE123456789" in lines[2] and "Amtsgericht Hannover HRB 123456" in mail_signature(seller)
    with pytest.raises(RuntimeError, match="SELLER_REGISTER_NUMBER"):
        seller_from_config({}, environ={"SELLER_REGISTER_NUMBER": " "})


def test_berlin_days_and_instants():
    import datetime as dt

    from kc_common.clock import as_berlin, berlin_date, berlin_today
    late = dt.datetime(2026, 12, 31, 23, 30, tzinfo=dt.UTC)  # 00:30 on New Year's Day
    assert berlin_date(late) == dt.date(2027, 1, 1)
    assert berlin_date(late.replace(tzinfo=None)) == dt.date(2027, 1, 1)  # naive = UTC (SQLite)
    assert as_berlin(dt.datetime(2026, 7, 1, 12, 0)).hour == 14  # summer time
    assert berlin_today() in {dt.date.today() - dt.timedelta(days=1), dt.date.today(),
                              dt.date.today() + dt.timedelta(days=1)}


def test_utc_instants():
    import datetime as dt

    from kc_common.clock import as_utc, utcnow
    assert as_utc(None) is None
    naive = dt.datetime(2026, 7, 1, 12, 0)  # as SQLite hands a stored instant back
    assert as_utc(naive) == naive.replace(tzinfo=dt.UTC)
    berlin = dt.datetime(2026, 7, 1, 14, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert as_utc(berlin) is berlin  # an aware instant is left alone
    assert utcnow().utcoffset() == dt.timedelta(0)


@pytest.mark.parametrize("value, text", [
    (Decimal("0"), "0,00\u00a0€"), ("-11.78", "-11,78\u00a0€"), (Decimal("1234.5"), "1.234,50\u00a0€"),
    (Decimal("-0.00"), "0,00\u00a0€"), (None, ""),
])
def test_money_de_is_german(value, text):
    from kc_common.formats import money_de
    assert money_de(value) == text


def test_idempotency_key_is_absent_or_1_to_200_characters():
    from kc_common.schemas import load_idempotency_key
    assert load_idempotency_key(None) is None and load_idempotency_key("k" * 200) == "k" * 200
    for bad in ("", "k" * 201):
        with pytest.raises(ValidationFailed) as err:
            load_idempotency_key(bad)
        assert set(err.value.fields) == {"Idempotency-Key"}


def test_configured_builds_once_from_the_checked_settings_and_every_worker_gets_it():
    from types import SimpleNamespace

    from kc_common.settings import Configured
    built = []
    provider = Configured(lambda values: built.append(values["X"]) or SimpleNamespace(x=values["X"]))
    provider.container = SimpleNamespace(config={"X": 7})
    provider.setup()
    first, second = provider.get_dependency(None), provider.get_dependency(None)
    assert first is second and first.x == 7 and built == [7]
