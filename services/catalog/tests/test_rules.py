"""catalog's order and tariff-change rules as pure functions: products and contracts are
plain fakes (no bus, no database), as in cosmicpython's unit tests."""
import datetime as dt
from decimal import Decimal
from types import SimpleNamespace

import pytest

from kc_catalog.domain.common import ACTIVE, CANCELLED, PENDING
from kc_catalog.domain.contracts import (
    contract_view,
    invoiced_period_ends,
    tariff_change,
    upgraded_description,
)
from kc_catalog.domain.orders import (
    SERVER_DOMAIN,
    check_item,
    contract_terms,
    first_period,
)
from kc_catalog.domain.products import check_product, product_view
from kc_common.errors import Conflict, Unprocessable, ValidationFailed


def product(pid="managed-business", kind="server", *, name="FlexServer - Business", price="99.00",
            periods=(1, 12), active=True, tld=None, family="managed-flexserver", rank=2,
            description="Managed FlexServer", applies_to=()):
    return SimpleNamespace(id=pid, kind=kind, name=name, price_net=Decimal(price), periods=list(periods),
                           active=active, tld=tld, family=family, rank=rank, description=description,
                           vat_rate=Decimal("19.00"), attributes={"applies_to": list(applies_to)})


SSD = product("ssd-200", "option", name="SSD 200%", price="15.00", family=None, rank=None,
              applies_to=["managed-flexserver", "root-flexserver"])
DE = product("domain-de", "domain", name=".de-Domain", price="9.90", periods=(12,), tld="de",
             family=None, rank=None, description="Domain .de")


def check(item, prod, options=()):
    errors = {}
    resolved = check_item(0, item, prod, {o.id: o for o in options}, errors)
    return resolved, errors


# ---------------------------------------------------------------- an order's items

def test_an_unknown_or_withdrawn_product_is_refused():
    for prod in (None, product(active=False)):
        resolved, errors = check({"product_id": "x"}, prod)
        assert resolved is None and errors == {"items.0.product_id": ["Unbekanntes Produkt."]}


def test_an_option_alone_is_not_orderable():
    resolved, errors = check({"product_id": SSD.id}, SSD)
    assert resolved is None
    assert errors == {"items.0.product_id": ["Diese Option kann nur zusammen mit einem Server bestellt werden."]}


def test_the_longest_period_is_the_default_and_an_unoffered_one_is_refused():
    resolved, errors = check({"product_id": "s"}, product())
    assert resolved["period"] == 12 and errors == {}
    _, errors = check({"product_id": "s", "period_months": 3}, product())
    assert errors["items.0.period_months"] == [
        "Zahlungsperiode 3 Monate wird für dieses Produkt nicht angeboten (möglich: 1, 12)."]


def test_a_domain_is_normalised_and_must_match_the_products_tld():
    resolved, errors = check({"product_id": DE.id, "domain": "Bücher.DE"}, DE)
    assert resolved["domain"] == "xn--bcher-kva.de" and errors == {}
    _, errors = check({"product_id": DE.id, "domain": "example.com"}, DE)
    assert errors == {"items.0.domain": ["Die Domain passt nicht zum Produkt (.de)."]}
    _, errors = check({"product_id": DE.id}, DE)
    assert errors == {"items.0.domain": ["Bitte geben Sie die Domain an."]}


def test_a_hosting_packages_domain_becomes_its_label_and_a_server_takes_no_domain():
    hosting = product("hosting-business", "hosting", family="businesshosting")
    resolved, errors = check({"product_id": hosting.id, "domain": "Example.DE"}, hosting)
    assert (resolved["domain"], resolved["label"], errors) == (None, "example.de", {})
    _, errors = check({"product_id": "s", "domain": "example.de"}, product())
    assert errors == {"items.0.domain": ["Für dieses Produkt wird keine Domain angegeben."]}


@pytest.mark.parametrize("label, message", [
    ("web_01", "Der Servername darf nur Buchstaben, Ziffern, Punkte und Bindestriche enthalten."),
    ("-web", "Der Servername darf nur Buchstaben, Ziffern, Punkte und Bindestriche enthalten."),
    (f"web.{SERVER_DOMAIN}", f"Namen unter {SERVER_DOMAIN} vergeben wir selbst."),
])
def test_a_server_name_must_be_a_host_name_outside_our_own_domain(label, message):
    resolved, errors = check({"product_id": "s", "label": label}, product())
    assert errors == {"items.0.label": [message]}
    assert resolved["label"] is None


def test_a_server_name_is_lower_cased_and_a_domain_takes_no_label():
    resolved, errors = check({"product_id": "s", "label": "Web01.Example.DE"}, product())
    assert resolved["label"] == "web01.example.de" and errors == {}
    _, errors = check({"product_id": DE.id, "domain": "example.de", "label": "x"}, DE)
    assert list(errors) == ["items.0.label"]


def test_usage_and_options_only_for_servers():
    _, errors = check({"product_id": DE.id, "domain": "example.de", "usage": "Shop",
                       "options": [SSD.id]}, DE, [SSD])
    assert errors == {"items.0.usage": ["Eine Nutzung wird nur bei Servern angegeben."],
                      "items.0.options": ["Optionen gibt es nur für Server."]}


def test_a_servers_options_must_apply_to_its_family_and_come_once():
    resolved, errors = check({"product_id": "s", "options": [SSD.id]}, product(), [SSD])
    assert resolved["options"] == [SSD] and errors == {}
    resolved, errors = check({"product_id": "s", "options": [SSD.id, SSD.id]}, product(), [SSD])
    assert errors == {"items.0.options": ["Eine Option ist mehrfach angegeben."]}
    assert resolved["options"] == [SSD]  # named twice, booked (and priced) once
    other = product(family="cloud")
    _, errors = check({"product_id": "s", "options": [SSD.id, "gone"]}, other, [SSD])
    assert errors == {"items.0.options": [f"Die Option {SSD.id} gibt es für diesen Server nicht.",
                                          "Die Option gone gibt es für diesen Server nicht."]}


def test_errors_are_recorded_under_the_items_index():
    errors = {}
    check_item(3, {"product_id": "x"}, None, {}, errors)
    assert list(errors) == ["items.3.product_id"]


def test_the_first_period_runs_to_the_day_before_the_next_invoice():
    assert first_period(dt.date(2026, 1, 31), 1) == (dt.date(2026, 1, 31), dt.date(2026, 2, 27),
                                                     dt.date(2026, 2, 28))
    assert first_period(dt.date(2026, 3, 1), 12) == (dt.date(2026, 3, 1), dt.date(2027, 2, 28),
                                                     dt.date(2027, 3, 1))


def test_a_servers_terms_name_its_options_and_usage_and_price_them_in():
    terms = contract_terms(product(), 12, [SSD], "Shop")
    assert terms["description"] == "FlexServer - Business - SSD 200% - Nutzung: Shop"
    assert terms["price_net"] == Decimal("1368.00")  # (99 + 15) x 12
    assert terms["options"] == [{"product_id": SSD.id, "name": SSD.name, "price_net": "15.00"}]
    assert contract_terms(DE, 12)["description"] == "Domain .de"


# ---------------------------------------------------------------- tariff change

def contract(status=ACTIVE, *, product_id="managed-business", rank=2, pending=None, kind="server",
             name="FlexServer - Business", description="FlexServer - Business - SSD 200%"):
    return SimpleNamespace(id=41, customer_id=7, kind=kind, status=status, product_id=product_id,
                           name=name, rank=rank, family="managed-flexserver", period_months=12,
                           price_net=Decimal("1368.00"), vat_rate=Decimal("19.00"),
                           next_invoice_date=dt.date(2027, 3, 1), pending_product_id=pending,
                           description=description)


PREMIUM = product("managed-premium", name="FlexServer - Premium", price="169.00", rank=3,
                  description="Managed FlexServer Premium")
STARTER = product("managed-starter", name="FlexServer - Starter", price="59.00", rank=1)
TODAY = dt.date(2026, 11, 26)


def test_an_upgrade_is_effective_today_with_the_booked_options_priced_in():
    change, price = tariff_change(contract(), PREMIUM, [SSD], TODAY)
    assert price == Decimal("2208.00")  # (169 + 15) x 12
    assert (change["change"], change["effective_date"]) == ("upgrade", TODAY)
    assert (change["period_start"], change["period_end"]) == (dt.date(2026, 3, 1), dt.date(2027, 2, 28))
    assert change["old"]["price_net"] == Decimal("1368.00") and change["new"]["price_net"] == price


def test_a_downgrade_waits_for_the_next_invoice():
    change, price = tariff_change(contract(), STARTER, [], TODAY)
    assert (change["change"], change["effective_date"], price) == ("downgrade", dt.date(2027, 3, 1),
                                                                   Decimal("708.00"))


@pytest.mark.parametrize("row", [contract(PENDING), contract(CANCELLED), contract(pending="managed-starter")])
def test_only_an_active_contract_without_a_pending_change_changes_tariff(row):
    with pytest.raises(Conflict):
        tariff_change(row, PREMIUM, [], TODAY)


@pytest.mark.parametrize("target, field", [
    (None, "Unbekanntes Produkt."),
    (product("root-l", family="root-flexserver", rank=3), "Nicht in derselben Produktfamilie."),
    (product(), "Nicht in derselben Produktfamilie."),  # the product it already has
    (product("managed-premium", periods=(1,), rank=3), "Zahlungsperiode nicht angeboten."),
])
def test_a_tariff_change_stays_in_the_family_and_the_payment_period(target, field):
    with pytest.raises(Unprocessable) as err:
        tariff_change(contract(), target, [], TODAY)
    assert err.value.to_body()["fields"] == {"product_id": [field]}


def test_an_upgraded_server_keeps_its_options_in_the_description():
    assert upgraded_description(contract(), PREMIUM) == "FlexServer - Premium - SSD 200%"
    hosting = contract(kind="hosting", description="old package")
    assert upgraded_description(hosting, PREMIUM) == "Managed FlexServer Premium"
    assert upgraded_description(contract(kind="addon", description="mine"), PREMIUM) == "mine"


def test_the_next_invoice_follows_the_last_invoiced_period_of_each_contract():
    invoice = {"lines": [
        {"contract_id": 1, "period_end": "2027-02-28"}, {"contract_id": 1, "period_end": "2026-12-31"},
        {"contract_id": 2, "period_end": "2027-01-31"}, {"contract_id": None, "period_end": "2027-01-31"},
        {"contract_id": 3}]}
    assert invoiced_period_ends(invoice) == {1: dt.date(2027, 2, 28), 2: dt.date(2027, 1, 31)}
    assert invoiced_period_ends({}) == {}


# ---------------------------------------------------------------- what the customer sees

def view_row(status=ACTIVE, kind="hosting", domain="example.de", panel="reseller", end_date=None):
    return SimpleNamespace(id=5, product_id="hosting-business", name="businesshosting", kind=kind,
                           domain=domain, label=None, description="d", attributes={"access": panel},
                           options=[], period_months=12, price_net=Decimal("154.80"),
                           vat_rate=Decimal("19.00"), status=status, start_date=None,
                           next_invoice_date=None, notice_days=30, end_date=end_date,
                           pending_product_id=None)


def test_the_panel_opens_only_while_the_product_runs():
    assert contract_view(view_row(ACTIVE))["access"] == {"available": True, "panel": "reseller",
                                                         "label": "Admin Reseller"}
    assert contract_view(view_row(CANCELLED))["access"]["available"] is True
    assert contract_view(view_row(PENDING))["access"]["available"] is False
    assert contract_view(view_row(panel=None))["access"] == {"available": False, "panel": None,
                                                             "label": None}


def test_a_domain_links_to_its_dns_zone_only_while_it_is_live_and_a_cancelled_one_names_its_end():
    assert contract_view(view_row(), live_domains={"example.de"})["dns_zone"] == "example.de"
    assert contract_view(view_row())["dns_zone"] is None
    view = contract_view(view_row(CANCELLED, end_date=dt.date(2027, 2, 28)))
    assert view["status_text"] == "Gekündigt zum 28.02.2027"
    assert view["price_gross"] == Decimal("184.21")


# ---------------------------------------------------------------- staff's product data

@pytest.mark.parametrize("data, kind, fields", [
    ({"periods": [1, 12]}, "domain", {"periods"}),                  # domains bill yearly
    ({"periods": [1, 1, 12]}, "server", {"periods"}),
    ({"family": "managed-flexserver"}, "server", {"rank"}),         # family without rank
    ({"family": None, "rank": 2}, "server", {"rank"}),
    ({"attributes": {"disk_gb": 20}}, "option", {"attributes"}),   # an option applies to families
    ({"periods": [12, 12], "rank": 1}, "domain", {"periods", "rank"}),
])
def test_staff_product_data_is_checked_against_the_catalogs_rules(data, kind, fields):
    with pytest.raises(ValidationFailed) as err:
        check_product(data, kind)
    assert set(err.value.fields) == fields


@pytest.mark.parametrize("data, kind", [
    ({"periods": [12]}, "domain"), ({"periods": [12, 1]}, "server"),
    ({"family": "root-flexserver", "rank": 4}, "server"), ({"family": None, "rank": None}, "addon"),
    ({"attributes": {"applies_to": ["root-flexserver"]}}, "option"), ({"price_net": "1.00"}, "option"),
])
def test_good_product_data_passes(data, kind):
    check_product(data, kind)


def test_a_products_view_prices_every_period_net_and_gross():
    view = product_view(SimpleNamespace(**vars(DE), notice_days=30))
    assert (view["category"], view["price_unit"]) == ("webhosting", "year")
    assert view["period_prices"] == [{"months": 12, "price_net": Decimal("9.90"),
                                      "price_gross": Decimal("11.78")}]
    server = product_view(SimpleNamespace(**vars(product()), notice_days=30))
    assert server["price_unit"] == "month"
    assert [p["price_net"] for p in server["period_prices"]] == [Decimal("99.00"), Decimal("1188.00")]
