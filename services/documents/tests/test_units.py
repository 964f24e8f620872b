"""documents' pure parts that need no renderer, bus or database."""


def test_numbers_published_as_integers_are_taken_as_text():
    from marshmallow import Schema

    from kc_documents.schemas import TextOrNumber

    class S(Schema):
        number = TextOrNumber(required=True)
    assert S().load({"number": 1000001}) == {"number": "1000001"}
    assert S().load({"number": "RE-7"}) == {"number": "RE-7"}
    assert S().validate({"number": True}) != {}  # a boolean is not a number here
