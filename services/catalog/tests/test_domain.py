"""catalog's pure rules."""
import pytest

from kc_catalog.domain import gross, normalise_domain


@pytest.mark.parametrize("raw, expected", [
    ("Beispiel.DE", "beispiel.de"), ("müller.de", "xn--mller-kva.de"), ("example.com.", "example.com"),
])
def test_domains_are_normalised_to_a_labels(raw, expected):
    assert normalise_domain(raw) == expected


@pytest.mark.parametrize("raw", ["", "nodot", "-bad.de", "a" * 64 + ".de", "www.sub.example.de", "bad_char.de"])
def test_malformed_domains_are_refused(raw):
    with pytest.raises(ValueError):
        normalise_domain(raw)


def test_gross_is_rounded_half_up():
    assert str(gross("9.90", "19.00")) == "11.78"
