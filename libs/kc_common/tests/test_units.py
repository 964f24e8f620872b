"""Pure logic of kc_common (no bus, no database)."""
from decimal import Decimal

import pytest
from marshmallow import fields

from kc_common.errors import NotFound, ValidationFailed
from kc_common.schemas import BaseSchema, load, money
from nameko.exceptions import deserialize, serialize


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
