"""catalog on the real bus: the three tables, order policy, tariff change, cancellation,
the lifecycle job, login links, traffic and staff catalog management."""
import datetime as dt
from functools import partial
from urllib.parse import parse_qs, urlparse

import pytest
from sqlalchemy import func, select, update

from kc_catalog import demo
from kc_catalog.domain import contracts as lifecycle
from kc_catalog.domain.traffic import usage as traffic_usage
from kc_catalog.models import contracts, metadata, server_traffic
from kc_catalog.service import CatalogService
from kc_common import testing
from kc_common.db import StandaloneDatabase
from kc_common.errors import (
    Conflict,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    Unauthenticated,
    Unprocessable,
    ValidationFailed,
)
from kc_common.testing import publish, wait_for

CUSTOMER = {"customer_id": 100001}
OTHER = {"customer_id": 100002}
ADMIN = {"staff_id": "1", "staff_roles": ["admin"]}
SUPPORT = {"staff_id": "2", "staff_roles": ["support"]}


call = partial(testing.call, context=CUSTOMER)


def order(container, *items, context=CUSTOMER, **kwargs):
    return call(container, "place_order", {"items": list(items)}, context=context, **kwargs)["contracts"]


# ---------------------------------------------------------------- ordering

def test_server_order_books_options_ips_and_shows_in_the_server_table(catalog, capture_events):
    events = capture_events("catalog", "order_placed")
    server, = order(catalog, {"product_id": "managed-business", "period_months": 1,
                              "options": ["opt-hdd-speed-3", "opt-disk-20"], "usage": "Testserver Webhosting"})
    assert server["description"] == ("FlexServer - Business - HDD Speed Upgrade III - + 20 GB HDD - "
                                     "Nutzung: Testserver Webhosting")
    assert server["price_net"] == "118.00"  # 99.00 + 15.00 + 4.00 per month
    assert server["server_name"] == f"srv{server['id']}.kundencenter-server.de"
    assert server["ip_addresses"] == ["178.250.10.1"] and server["status"] == "active"
    rows = call(catalog, "list_servers")["items"]
    assert rows[0]["service_level"] == "Managed" and rows[0]["traffic_included_gb"] == 20000
    assert rows[0]["access"] == {"available": True, "panel": "reseller", "label": "Admin Reseller"}
    item = events.wait(1)[0]["data"]["items"][0]
    assert item["status"] == "active" and item["ip_addresses"] == ["178.250.10.1"]
    assert item["kind"] == "server" and item["price_net"] == "118.00" and item["domain"] is None
    # the next server gets the next free address
    assert order(catalog, {"product_id": "root-s", "period_months": 1})[0]["ip_addresses"] == ["178.250.10.2"]


@pytest.mark.parametrize("item, field", [
    ({"product_id": "hosting-business", "options": ["opt-disk-20"]}, "items.0.options"),
    ({"product_id": "root-s", "options": ["opt-nope"]}, "items.0.options"),
    ({"product_id": "root-s", "domain": "beispiel.de"}, "items.0.domain"),
    ({"product_id": "root-s", "label": "kein name!"}, "items.0.label"),
    ({"product_id": "root-s", "label": "srv1.kundencenter-server.de"}, "items.0.label"),
    ({"product_id": "opt-disk-20"}, "items.0.product_id"),
    ({"product_id": "ssl-dv", "period_months": 1}, "items.0.period_months"),
    ({"product_id": "domain-connect"}, "items.0.domain"),
    ({"product_id": "hosting-shop", "domain": "ungültig..de"}, "items.0.domain"),
])
def test_bad_item_details_are_refused_naming_the_field(catalog, item, field):
    with pytest.raises(ValidationFailed) as err:
        order(catalog, item)
    assert field in err.value.fields
    assert call(catalog, "list_contracts")["total"] == 0


def test_the_three_tables_split_search_and_page(catalog):
    order(catalog, {"product_id": "hosting-business", "domain": "partner.de"},
          {"product_id": "domain-de", "domain": "partner.de"},
          {"product_id": "domain-connect", "domain": "extern.com"},
          {"product_id": "root-s", "period_months": 1},
          {"product_id": "ssl-dv", "label": "www.partner.de"})
    web = call(catalog, "list_webhosting")
    assert web["total"] == 3
    by_package = {r["package"]: r for r in web["items"]}
    assert by_package["businesshosting"]["name"] == "partner.de"
    assert by_package["businesshosting"]["access"]["label"] == "Login"
    assert by_package["Domain .de"]["access"]["available"] is False
    assert by_package["Domain .de"]["dns_zone"] == "partner.de"
    assert by_package["Domainaufschaltung"]["name"] == "extern.com"
    assert set(by_package["businesshosting"]) >= {"name", "package", "access", "period_months", "price_net",
                                                  "price_gross", "next_invoice_date", "status", "status_text"}
    assert call(catalog, "list_servers")["total"] == 1
    assert [r["product_name"] for r in call(catalog, "list_other")["items"]] == ["SSL-Zertifikat Domain Validated"]
    assert call(catalog, "list_webhosting", {"q": "extern"})["total"] == 1
    page = call(catalog, "list_webhosting", {"per_page": 2, "page": 2})
    assert page["total"] == 3 and len(page["items"]) == 1
    past_the_end = call(catalog, "list_webhosting", {"per_page": 2, "page": 3})
    assert past_the_end["total"] == 3 and past_the_end["items"] == []
    assert call(catalog, "list_servers", {"q": "178.250.10"})["total"] == 1
    with pytest.raises(ValidationFailed) as err:
        call(catalog, "list_webhosting", {"per_page": 0})
    assert "per_page" in err.value.fields


def test_in_arrears_the_order_is_pending_until_payment_received(catalog, config, arrears, capture_events):
    arrears.add(100001)
    activated = capture_events("catalog", "contract_activated")
    contract, = order(catalog, {"product_id": "hosting-shop", "period_months": 3})
    assert contract["status"] == "pending" and contract["access"]["available"] is False
    with pytest.raises(Conflict):
        call(catalog, "create_login_link", contract["id"])
    publish(config, "billing", "payment_received", {"payment_id": 7, "customer_id": 100001,
                                                    "amount": "40.00", "method": "card",
                                                    "settled_invoice_ids": [1]}, "pay-1")
    wait_for(lambda: call(catalog, "get_contract", contract["id"])["status"] == "active")
    assert activated.wait(1)[0]["data"] == {"contract_id": contract["id"], "customer_id": 100001}
    publish(config, "billing", "payment_received", {"payment_id": 7, "customer_id": 100001,
                                                    "amount": "40.00", "method": "card",
                                                    "settled_invoice_ids": [1]}, "pay-1")
    assert len(activated.drain(config["DATABASE_URL"], containers=[catalog])) == 1  # the same event twice activates once


def test_billing_unavailable_refuses_the_order_and_writes_nothing(container_factory, config, db):
    catalog = container_factory(CatalogService, config)
    catalog.start()
    with pytest.raises(ServiceUnavailable):
        order(catalog, {"product_id": "domain-de", "domain": "beispiel.de"})
    assert call(catalog, "list_contracts")["total"] == 0


def test_invoice_issued_moves_the_next_invoice_date(catalog, config):
    contract, = order(catalog, {"product_id": "hosting-business", "period_months": 1})
    start = dt.date.fromisoformat(contract["start_date"])
    end = start + dt.timedelta(days=60)
    publish(config, "billing", "invoice_issued", {
        "invoice_id": 1, "number": 1000001, "customer_id": 100001,
        "lines": [{"contract_id": contract["id"], "period_start": str(start), "period_end": str(end)},
                  {"contract_id": 999999, "period_start": str(start), "period_end": str(end)}]}, "inv-1")
    wait_for(lambda: call(catalog, "get_contract", contract["id"])["next_invoice_date"]
             == str(end + dt.timedelta(days=1)))


# ---------------------------------------------------------------- cancellation and the job

def test_cancellation_with_notice_then_termination_frees_the_domain(catalog, db, capture_events):
    cancelled = capture_events("catalog", "contract_cancelled")
    terminated = capture_events("catalog", "contract_terminated")
    contract, = order(catalog, {"product_id": "domain-de", "domain": "kuendigen.de"})
    preview = call(catalog, "cancellation_preview", contract["id"])
    # 12-month term, 30 days notice: ends with the first term
    expected_end = dt.date.fromisoformat(contract["next_invoice_date"]) - dt.timedelta(days=1)
    assert preview == {"contract_id": contract["id"], "notice_days": 30, "end_date": str(expected_end),
                       "status": "active"}
    with pytest.raises(NotFound):
        call(catalog, "cancel_contract", contract["id"], context=OTHER)
    done = call(catalog, "cancel_contract", contract["id"])
    assert done["status"] == "cancelled" and done["end_date"] == str(expected_end)
    assert done["status_text"] == f"Gekündigt zum {expected_end:%d.%m.%Y}"
    assert cancelled.wait(1)[0]["data"]["end_date"] == str(expected_end)
    with pytest.raises(Conflict):
        call(catalog, "cancel_contract", contract["id"])  # cancelled -> cancelled is not a transition
    with pytest.raises(Conflict):
        call(catalog, "change_tariff", contract["id"], {"product_id": "domain-com"})
    with pytest.raises(Conflict):  # still registered until the end date
        order(catalog, {"product_id": "domain-de", "domain": "kuendigen.de"}, context=OTHER)

    # The job on the day after the end date (the catalog's relay publishes what it commits).
    day_after = expected_end + dt.timedelta(days=1)
    with db.unit_of_work() as uow:
        ended, _ = lifecycle.due_contract_ids(uow.session, day_after)
    assert ended == [contract["id"]]
    with db.unit_of_work() as uow:
        assert lifecycle.terminate_one(uow, contract["id"], day_after)
    event = terminated.wait(1)[0]["data"]
    assert event["domain"] == "kuendigen.de" and event["terminated_on"] == str(day_after)
    assert call(catalog, "get_contract", contract["id"])["status"] == "terminated"
    with pytest.raises(Conflict):
        call(catalog, "cancel_contract", contract["id"])
    assert order(catalog, {"product_id": "domain-de", "domain": "kuendigen.de"}, context=OTHER)


def test_the_timer_terminates_contracts_whose_term_ended(container_factory, service_config_factory,
                                                         billing, capture_events):
    config = service_config_factory("kc_catalog", JOBS_INTERVAL=0.2)
    database = StandaloneDatabase(metadata, config["DATABASE_URL"], "catalog")
    with database.unit_of_work() as uow:
        demo.seed_products(uow.session)
    terminated = capture_events("catalog", "contract_terminated")
    catalog = container_factory(CatalogService, config)
    catalog.start()
    contract, = order(catalog, {"product_id": "root-s", "period_months": 1})
    call(catalog, "cancel_contract", contract["id"])
    with database.unit_of_work() as uow:  # pretend the term ended yesterday
        uow.session.execute(update(contracts).where(contracts.c.id == contract["id"])
                            .values(end_date=dt.date.today() - dt.timedelta(days=1)))
    assert terminated.wait(1)[0]["data"]["contract_id"] == contract["id"]
    assert call(catalog, "get_contract", contract["id"])["ip_addresses"] == []
    database.engine.dispose()


# ---------------------------------------------------------------- tariff change

def test_upgrade_at_once_downgrade_at_period_end(catalog, db, capture_events):
    changed = capture_events("catalog", "contract_changed")
    contract, = order(catalog, {"product_id": "hosting-business", "period_months": 12, "domain": "firma.de"})
    options = call(catalog, "tariff_options", contract["id"])["items"]
    assert {o["product_id"]: o["change"] for o in options} == {
        "hosting-business-start": "downgrade", "hosting-business-pro": "upgrade"}
    up = call(catalog, "change_tariff", contract["id"], {"product_id": "hosting-business-pro"})
    assert up["product_id"] == "hosting-business-pro" and up["price_net"] == "238.80"
    event = changed.wait(1)[0]["data"]
    assert event["change"] == "upgrade" and event["effective_date"] == contract["start_date"]
    assert event["old"]["price_net"] == "154.80" and event["new"]["price_net"] == "238.80"
    assert event["period_start"] == contract["start_date"]

    down = call(catalog, "change_tariff", contract["id"], {"product_id": "hosting-business-start"})
    assert down["product_id"] == "hosting-business-pro"  # not yet
    assert down["pending_change"] == {"product_id": "hosting-business-start", "price_net": "82.80",
                                      "effective_date": contract["next_invoice_date"]}
    assert changed.wait(2)[1]["data"]["effective_date"] == contract["next_invoice_date"]
    with pytest.raises(Conflict):  # one change at a time
        call(catalog, "change_tariff", contract["id"], {"product_id": "hosting-business"})
    effective = dt.date.fromisoformat(contract["next_invoice_date"])
    with db.unit_of_work() as uow:
        assert lifecycle.apply_downgrade(uow, contract["id"], effective)
    after = call(catalog, "get_contract", contract["id"])
    assert after["product_id"] == "hosting-business-start" and after["price_net"] == "82.80"
    assert after["pending_change"] is None


@pytest.mark.parametrize("target, error", [
    ("hosting-shop-pro", Unprocessable),   # another family
    ("nope", Unprocessable),               # unknown product
    ("hosting-business", Unprocessable),   # the same tariff
])
def test_tariff_change_outside_the_family_is_refused(catalog, target, error):
    contract, = order(catalog, {"product_id": "hosting-business", "period_months": 1})
    with pytest.raises(error):
        call(catalog, "change_tariff", contract["id"], {"product_id": target})
    with pytest.raises(NotFound):
        call(catalog, "change_tariff", contract["id"], {"product_id": "hosting-business-pro"}, context=OTHER)
    with pytest.raises(ValidationFailed):
        call(catalog, "change_tariff", contract["id"], {"product": "x"})


# ---------------------------------------------------------------- Zugang

def test_login_link_is_signed_single_use_and_only_for_the_owner(catalog):
    hosting, domain = order(catalog, {"product_id": "hosting-shop", "domain": "shop.de"},
                            {"product_id": "domain-de", "domain": "shop.de"})
    link = call(catalog, "create_login_link", hosting["id"])
    assert link["url"].startswith("https://servercon.kundencenter.example/sso?token=")
    assert "password" not in link["url"].lower()
    token = parse_qs(urlparse(link["url"]).query)["token"][0]
    redeemed = call(catalog, "redeem_login_link", {"token": token}, context={})
    assert redeemed["contract_id"] == hosting["id"] and redeemed["customer_id"] == 100001
    assert redeemed["panel"] == "servercon" and redeemed["account"] == "shop.de"
    with pytest.raises(Conflict):
        call(catalog, "redeem_login_link", {"token": token}, context={})
    with pytest.raises(Unauthenticated):
        call(catalog, "redeem_login_link", {"token": token[:-3] + "abc"}, context={})
    with pytest.raises(NotFound):
        call(catalog, "create_login_link", hosting["id"], context=OTHER)
    with pytest.raises(Unprocessable):
        call(catalog, "create_login_link", domain["id"])
    root, = order(catalog, {"product_id": "root-s", "period_months": 1})
    assert call(catalog, "create_login_link", root["id"])["url"].startswith("https://cloud.kundencenter.example/")


def test_an_expired_login_token_is_refused(catalog, db):
    from kc_catalog.domain import access
    hosting, = order(catalog, {"product_id": "hosting-shop"})
    link = call(catalog, "create_login_link", hosting["id"])
    token = parse_qs(urlparse(link["url"]).query)["token"][0]
    with db.unit_of_work() as uow, pytest.raises(Unauthenticated):
        access.redeem(uow, token, secret="dev-only-catalog-login-link-secret-change-me", ttl=-1)


# ---------------------------------------------------------------- traffic

def test_traffic_is_fed_by_operators_and_shown_per_month(catalog):
    server, = order(catalog, {"product_id": "root-s", "period_months": 1, "label": "web1.example.net"})
    today = dt.date.today()
    first = today.replace(day=1)
    last_month = (first - dt.timedelta(days=1)).replace(day=1)
    with pytest.raises(Conflict):  # server names are unique among live servers
        order(catalog, {"product_id": "root-m", "period_months": 1, "label": "WEB1.example.net"}, context=OTHER)
    items = [{"server_name": "web1.example.net", "day": str(last_month + dt.timedelta(days=d)), "gb": "12.5"}
             for d in range(28)]
    items.append({"contract_id": server["id"], "day": str(first), "gb": 4})
    assert call(catalog, "report_traffic", {"items": items}, context=ADMIN) == {"stored": 29}
    # a second report of a day replaces the first
    call(catalog, "report_traffic", {"items": [{"contract_id": server["id"], "day": str(first), "gb": 5}]},
         context=ADMIN)
    usage = call(catalog, "traffic_usage", server["id"], {"months": 3})
    current, previous = usage["months"][0], usage["months"][1]
    assert usage["included_gb"] == "300.00"
    assert current["used_gb"] == "5.00" and current["over_use"] is False and current["complete"] is False
    assert previous["used_gb"] == "350.00" and previous["over_use"] is True and previous["over_gb"] == "50.00"
    assert usage["trend"]["direction"] in ("up", "down", "flat")
    assert call(catalog, "traffic_overview")["items"][0]["previous"]["over_use"] is True
    with pytest.raises(NotFound):
        call(catalog, "traffic_usage", server["id"], context=OTHER)


@pytest.mark.parametrize("item, field", [
    ({"contract_id": 999999, "day": "2026-01-01", "gb": 1}, "items.0.contract_id"),
    ({"server_name": "unbekannt.example", "day": "2026-01-01", "gb": 1}, "items.0.server_name"),
    ({"day": "2026-01-01", "gb": 1}, "items.0.contract_id"),
    ({"contract_id": 1, "day": "2999-01-01", "gb": 1}, "items.0.day"),
    ({"contract_id": 1, "day": "2026-01-01", "gb": -1}, "items.0.gb"),
    ({"contract_id": 1, "day": "gestern", "gb": 1}, "items.0.day"),
])
def test_bad_traffic_reports_are_refused(catalog, item, field):
    order(catalog, {"product_id": "root-s", "period_months": 1})
    with pytest.raises(ValidationFailed) as err:
        call(catalog, "report_traffic", {"items": [item]}, context=ADMIN)
    assert field in err.value.fields


def test_traffic_feed_is_for_operators_and_only_servers_have_traffic(catalog):
    hosting, = order(catalog, {"product_id": "hosting-shop"})
    with pytest.raises(Forbidden):
        call(catalog, "report_traffic", {"items": [{"contract_id": 1, "day": "2026-01-01", "gb": 1}]},
             context=SUPPORT)
    with pytest.raises(Unauthenticated):
        call(catalog, "report_traffic", {"items": [{"contract_id": 1, "day": "2026-01-01", "gb": 1}]})
    with pytest.raises(Unprocessable):
        call(catalog, "traffic_usage", hosting["id"])


# ---------------------------------------------------------------- staff: the catalog

def test_price_change_applies_to_new_bookings_only(catalog):
    before, = order(catalog, {"product_id": "hosting-business", "period_months": 1})
    changed = call(catalog, "staff_update_product", "hosting-business", {"price_net": "14.90"}, context=ADMIN)
    assert changed["price_net"] == "14.90" and changed["price_gross"] == "17.73"
    after, = order(catalog, {"product_id": "hosting-business", "period_months": 1})
    assert after["price_net"] == "14.90"
    assert call(catalog, "get_contract", before["id"])["price_net"] == "12.90"
    history = call(catalog, "staff_price_history", "hosting-business", context=ADMIN)["items"]
    assert [h["price_net"] for h in history] == ["14.90", "12.90"]
    with pytest.raises(Forbidden):
        call(catalog, "staff_update_product", "hosting-business", {"price_net": "1.00"}, context=SUPPORT)
    with pytest.raises(Unauthenticated):
        call(catalog, "staff_update_product", "hosting-business", {"price_net": "1.00"})
    with pytest.raises(ValidationFailed) as err:
        call(catalog, "staff_update_product", "hosting-business", {"price_net": "-1"}, context=ADMIN)
    assert "price_net" in err.value.fields
    with pytest.raises(NotFound):
        call(catalog, "staff_update_product", "nope", {"price_net": "1.00"}, context=ADMIN)


def test_staff_create_and_retire_products(catalog):
    created = call(catalog, "staff_create_product", {
        "id": "domain-at", "kind": "domain", "name": "Domain .at", "tld": "at", "price_net": "19.90",
        "vat_rate": "19.00", "periods": [12]}, context=ADMIN)
    assert created["period_prices"] == [{"months": 12, "price_net": "19.90", "price_gross": "23.68"}]
    assert order(catalog, {"product_id": "domain-at", "domain": "beispiel.at"})[0]["price_net"] == "19.90"
    with pytest.raises(Conflict):
        call(catalog, "staff_create_product", {"id": "domain-at2", "kind": "domain", "name": "x", "tld": "at",
                                               "price_net": "1", "vat_rate": "19", "periods": [12]}, context=ADMIN)
    with pytest.raises(ValidationFailed) as err:
        call(catalog, "staff_create_product", {"id": "domain-ch", "kind": "domain", "name": "x", "tld": "ch",
                                               "price_net": "1", "vat_rate": "19", "periods": [1]}, context=ADMIN)
    assert "periods" in err.value.fields
    with pytest.raises(ValidationFailed) as err:
        call(catalog, "staff_create_product", {"id": "hosting-x", "kind": "hosting", "name": "x",
                                               "family": "businesshosting", "price_net": "1",
                                               "vat_rate": "19", "periods": [1]}, context=ADMIN)
    assert "rank" in err.value.fields
    call(catalog, "staff_update_product", "domain-at", {"active": False}, context=ADMIN)
    assert "domain-at" not in {p["id"] for p in call(catalog, "list_products", context={})["items"]}
    assert "domain-at" in {p["id"] for p in call(catalog, "staff_list_products", context=ADMIN)["items"]}
    with pytest.raises(ValidationFailed):
        order(catalog, {"product_id": "domain-at", "domain": "zwei.at"})


# ---------------------------------------------------------------- demo data

def test_demo_seed_matches_the_guide_and_is_idempotent(config, db):
    demo.seed(db, config, today=dt.date(2026, 11, 26))
    demo.seed(db, config, today=dt.date(2026, 11, 26))
    with db.unit_of_work() as uow:
        rows = uow.session.execute(select(contracts).where(contracts.c.customer_id == 100001)
                                   .order_by(contracts.c.id)).all()
        events = uow.session.execute(select(db.outbox.c.payload)).scalars().all()
        page = lifecycle.list_contracts(uow.session, 100001, page=1, per_page=20, category="server")
    # the ids billing's demo billed them under (kc_billing.demo; tests/test_demo_data.py)
    assert [r.id for r in rows] == [c["id"] for c in demo.DEMO_CONTRACTS] == list(range(1, 10))
    assert [e["type"] for e in events] == ["order_placed"]
    shop = next(r for r in rows if r.product_id == "hosting-shop")
    assert shop.label == "profihost-demo.de" and shop.next_invoice_date == dt.date(2026, 11, 30)
    ip = rows[-1]   # ordered on the day of the seed: the demo's small open amount
    assert (ip.product_id, ip.start_date, ip.next_invoice_date) == (
        "ip-additional", dt.date(2026, 11, 26), dt.date(2026, 12, 26))
    managed, root = page["items"][1], page["items"][0]
    assert managed["description"].startswith("FlexServer - Business - HDD Speed Upgrade III - + 20 GB HDD")
    assert managed["ip_addresses"] == ["178.250.9.79"] and managed["traffic_included_gb"] == 20000
    assert root["service_level"] == "Root" and root["ip_addresses"] == ["178.250.8.83"]
    items = events[0]["data"]["items"]
    assert {i["period_end"] for i in items if i["product_id"] == "domain-de"} == {"2027-05-23"}
    # six months of demo traffic up to yesterday; a later run tops it up to its yesterday
    with db.unit_of_work() as uow:
        usage = traffic_usage(uow.session, 100001, root["id"], months=6, today=dt.date(2026, 11, 26))
    assert usage["months"][1]["days_reported"] == 31 and usage["months"][1]["over_use"] is True
    demo.seed(db, config, today=dt.date(2026, 12, 3))
    with db.unit_of_work() as uow:
        last = uow.session.execute(select(func.max(server_traffic.c.day)).where(
            server_traffic.c.contract_id == root["id"])).scalar_one()
    assert last == dt.date(2026, 12, 2)


def test_pending_contract_cancelled_ends_today_and_the_job_terminates_it(catalog, db, arrears, capture_events):
    arrears.add(100001)
    terminated = capture_events("catalog", "contract_terminated")
    contract, = order(catalog, {"product_id": "domain-eu", "domain": "offen.eu"})
    assert contract["status"] == "pending"
    done = call(catalog, "cancel_contract", contract["id"])
    assert done["status"] == "cancelled" and done["end_date"] == contract["start_date"]
    with pytest.raises(Forbidden):
        call(catalog, "run_jobs", context=SUPPORT)
    assert call(catalog, "run_jobs", context=ADMIN) == {"terminated": 0, "downgraded": 0}  # not before tomorrow
    tomorrow = dt.date.fromisoformat(contract["start_date"]) + dt.timedelta(days=1)
    with db.unit_of_work() as uow:
        assert lifecycle.terminate_one(uow, contract["id"], tomorrow)
    assert terminated.wait(1)[0]["data"]["domain"] == "offen.eu"


def test_an_announced_downgrade_still_happens_when_the_term_reaches_it(catalog, db):
    contract, = order(catalog, {"product_id": "root-m", "period_months": 1})
    call(catalog, "change_tariff", contract["id"], {"product_id": "root-s"})
    with db.unit_of_work() as uow:  # cancelled too late for this term: runs one more month
        uow.session.execute(update(contracts).where(contracts.c.id == contract["id"]).values(notice_days=60))
    cancelled = call(catalog, "cancel_contract", contract["id"])
    assert cancelled["end_date"] > contract["next_invoice_date"]
    assert cancelled["pending_change"]["product_id"] == "root-s"
    with db.unit_of_work() as uow:
        assert lifecycle.apply_downgrade(uow, contract["id"], dt.date.fromisoformat(contract["next_invoice_date"]))
    after = call(catalog, "get_contract", contract["id"])
    assert after["product_id"] == "root-s" and after["status"] == "cancelled" and after["price_net"] == "14.90"
    assert after["description"].startswith("Root FlexServer - 2 CPU Kerne")


def test_concurrent_server_orders_get_distinct_addresses(catalog, config):
    import eventlet
    from nameko.standalone.rpc import ServiceRpcProxy
    results = []

    def order_server(customer_id):
        with ServiceRpcProxy("catalog", config, context_data={"customer_id": customer_id}) as proxy:
            contract = proxy.place_order({"items": [{"product_id": "root-s", "period_months": 1}]})
            results.append(contract["contracts"][0]["ip_addresses"][0])

    pool = eventlet.GreenPool()
    for cid in range(100001, 100006):
        pool.spawn(order_server, cid)
    pool.waitall()
    assert len(results) == 5 and len(set(results)) == 5, results


def test_the_same_idempotency_key_sent_concurrently_places_one_order(catalog, config, capture_events):
    import eventlet
    from nameko.standalone.rpc import ServiceRpcProxy
    events = capture_events("catalog", "order_placed")
    results = []

    def place():
        with ServiceRpcProxy("catalog", config, context_data=CUSTOMER) as proxy:
            results.append(proxy.place_order({"items": [{"product_id": "domain-de", "domain": "einmal.de"}]},
                                             idempotency_key="doppelklick")["id"])

    pool = eventlet.GreenPool()
    for _ in range(4):
        pool.spawn(place)
    pool.waitall()
    assert len(results) == 4 and len(set(results)) == 1, results
    assert len(events.drain(config["DATABASE_URL"])) == 1
