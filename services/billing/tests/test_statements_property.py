"""Property: across random sequences of statements (re-imported, overlapping camt.053/054),
SEPA collection runs, return debits (Rücklastschriften, reported twice),
Klärfall assignments and new invoices, on PostgreSQL,

- every customer's balance equals the sum of their bookings, and the open items agree with it
  (open invoices - credit = -balance);
- every real payment (booked credit on the seller's account) is booked exactly once or is an
  open Klärfall: never twice, never lost; nothing of another account or pending is booked;
- what was booked equals the sum of the distinct real payments booked;
- SEPA: an invoice is collected once; a debit is reversed at most once (with one fee), and
  exactly the returned debits are reversed.
"""
import datetime as dt
import itertools
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from kc_billing import camt, domain, sepa, statements
from kc_billing.models import bank_clarifications, bookings, sepa_debits
from kc_billing.settings import BillingSettings

from .camt_files import OTHER_IBAN, SELLER_IBAN, Tx, statement
from .conftest import CUSTOMERS

RUN = itertools.count(1)
NOW = dt.datetime(2026, 11, 26, 12, tzinfo=dt.UTC)

payment = st.fixed_dictionaries({
    "cents": st.one_of(st.integers(min_value=1, max_value=5000), st.just(1178)),  # twins too
    "customer": st.integers(min_value=0, max_value=2),
    "refers": st.sampled_from(["kc", "invoice", "word", "none", "iban"]),
    "bank_ref": st.booleans(),                 # AcctSvcrRef present (else NOTPROVIDED, hash identity)
    "status": st.sampled_from(["BOOK", "BOOK", "BOOK", "PDNG"]),
    "own": st.sampled_from([True, True, True, False]),
})
step = st.one_of(
    st.tuples(st.just("import"), st.integers(min_value=0, max_value=3)),
    st.tuples(st.just("assign"), st.integers(min_value=0, max_value=2)),
    st.tuples(st.just("invoice"), st.integers(min_value=0, max_value=2)),
    st.tuples(st.just("collect"), st.integers(min_value=0, max_value=3)),   # SEPA collection run
    st.tuples(st.just("return"), st.integers(min_value=0, max_value=5)),    # a Rücklastschrift
)


def _customers(run):
    return [900000 + run * 10 + i for i in range(3)]


def _setup(db, cfg, ids):
    with db.unit_of_work() as uow:
        for cid in ids:
            domain.upsert_customer(uow.session, dict(CUSTOMERS[100001], customer_id=cid,
                                                     email=f"p{cid}@example.org"))


def _invoice(db, cfg, customer_id, n):
    with db.unit_of_work() as uow:
        return domain.issue_invoice(uow, customer_id, [{
            "text": f"Hosting {n}", "contract_id": None, "period_start": None, "period_end": None,
            "net": Decimal("10.00") + n, "vat_rate": Decimal("19.00")}], cfg, now=NOW)["number"]


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(files=st.lists(st.lists(payment, min_size=1, max_size=6), min_size=1, max_size=4),
       steps=st.lists(step, min_size=1, max_size=12))
def test_no_payment_is_booked_twice_or_lost_and_the_balance_is_the_ledger(db, config, files, steps):
    cfg = BillingSettings(config)
    run = next(RUN)
    ids = _customers(run)
    _setup(db, cfg, ids)
    invoices = {cid: [_invoice(db, cfg, cid, 0)] for cid in ids}
    ibans = {}
    for i, cid in enumerate(ids):
        ibans[cid] = f"DE{run % 90 + 10:02d}5001051700000{run:05d}{i}"[:22]
        with db.unit_of_work() as uow:  # the third customer pays by Lastschrift
            uow.session.execute(domain.payment_details.insert().values(
                customer_id=cid, by_post=False, with_contact_person=False,
                method="sepa" if i == 2 else "transfer", iban=ibans[cid], bic="COBADEFFXXX",
                account_holder="Max", mandate_reference=f"KC{cid}-M001" if i == 2 else None,
                mandate_date=NOW.date(), updated_at=NOW))
    invoices[ids[2]].append(_invoice(db, cfg, ids[2], 1))  # a SEPA invoice to collect
    returns = 0

    # The bank's files: each real payment appears in one file; one with a bank reference may
    # also appear in a second file (camt.054 notification, then the day-end camt.053).
    docs, real = [], {}     # real: identity -> (amount, own+booked?)
    for f, payments in enumerate(files):
        txs = []
        for k, p in enumerate(payments):
            cid = ids[p["customer"]]
            reference = {"kc": f"KC{cid}", "invoice": f"RE {invoices[cid][0]}",
                         "word": f"Kundennummer {cid}", "none": "Danke", "iban": "Beitrag"}[p["refers"]]
            txs.append(Tx(f"{Decimal(p['cents']) / 100:.2f}", reference,
                          payer_iban=ibans[cid] if p["refers"] == "iban" else "DE44500105175407324931",
                          acct_svcr_ref=f"R{run}-{f}-{k}" if p["bank_ref"] else None,
                          status=p["status"]))
        own = [t for t, p in zip(txs, payments) if p["own"]]
        foreign = [t for t, p in zip(txs, payments) if not p["own"]]
        doc = [statement(own, stmt_id=f"S{run}-{f}")] if own else []
        if foreign:
            doc.append(statement(foreign, iban=OTHER_IBAN, stmt_id=f"F{run}-{f}"))
        overlap = [t for t in own if t.acct_svcr_ref]
        if overlap:  # the same payments notified by camt.054 too
            doc.append(statement(overlap, stmt_id=f"N{run}-{f}", version="camt.054.001.08"))
        docs.append(doc)

    imported = set()
    expected = {f: [Decimal(p["cents"]) / 100 for p in payments if p["own"] and p["status"] == "BOOK"]
                for f, payments in enumerate(files)}  # the real payments, counted without the parser
    for kind, arg in steps:
        if kind == "import" and arg < len(docs):
            for xml in docs[arg]:
                for tx in camt.parse(xml):
                    with db.unit_of_work() as uow:
                        report = statements.import_transaction(uow, tx, cfg.own_accounts, now=NOW)
                    if tx["account"] == SELLER_IBAN and tx["status"] == "BOOK":
                        real[tx["transaction_id"]] = tx["amount"]
                        assert report["outcome"] in ("booked", "already_booked", "clarification")
                    else:
                        assert report["outcome"] == "not_booked"
            imported.add(arg)
        elif kind == "assign":
            with db.unit_of_work() as uow:
                case = uow.session.execute(select(bank_clarifications.c.id).where(
                    bank_clarifications.c.status == "open",
                    bank_clarifications.c.transaction_id.in_(list(real) or [""])).limit(1)).scalar()
            if case is not None:
                with db.unit_of_work() as uow:
                    statements.assign(uow, case, ids[arg], None, "staff:1")
        elif kind == "invoice":
            invoices[ids[arg]].append(_invoice(db, cfg, ids[arg], len(invoices[ids[arg]])))
        elif kind == "collect":  # due dates of this example only (one collection per due date)
            with db.unit_of_work() as uow:
                sepa.collect(uow, dt.date(2030, 1, 1) + dt.timedelta(days=run * 10 + arg), cfg)
        elif kind == "return":
            with db.unit_of_work() as uow:
                debits = uow.session.execute(select(sepa_debits.c.end_to_end_id, sepa_debits.c.amount)
                                             .where(sepa_debits.c.customer_id.in_(ids))
                                             .order_by(sepa_debits.c.id)).all()
            if debits:
                e2e, amount = debits[arg % len(debits)]
                returns += 1   # the bank reports it under one of two references (053, then 054)
                xml = statement([Tx(f"{amount:.2f}", "RUECKLASTSCHRIFT", direction="DBIT",
                                    return_reason="AM04", end_to_end=e2e,
                                    acct_svcr_ref=f"RL{run}-{e2e}-{arg % 2}")],
                                stmt_id=f"RL{run}-{returns}")
                for tx in camt.parse(xml):
                    with db.unit_of_work() as uow:
                        report = statements.import_transaction(uow, tx, cfg.own_accounts, now=NOW,
                                                               settings=cfg)
                    assert report["outcome"] in ("booked", "already_booked") and report["reason"] == "return"

        with db.unit_of_work() as uow:
            s = uow.session
            for cid in ids:
                total = s.execute(select(func.coalesce(func.sum(bookings.c.amount), 0)).where(
                    bookings.c.customer_id == cid)).scalar_one()
                balance = domain.balance_of(s, cid)
                assert balance == total
                items, credit = domain.open_items(s, cid)
                assert sum(o for _, _, o in items) - credit == -balance
                assert all(o >= 0 for _, _, o in items) and credit >= 0
            booked = dict(s.execute(select(bookings.c.external_ref, func.count()).where(
                bookings.c.external_ref.in_(list(real) or [""])).group_by(bookings.c.external_ref)).all())
            cases = dict(s.execute(select(bank_clarifications.c.transaction_id,
                                          bank_clarifications.c.status).where(
                bank_clarifications.c.transaction_id.in_(list(real) or [""]))).all())
            for identity in real:
                assert booked.get(identity, 0) == 1 or (booked.get(identity, 0) == 0
                                                        and cases.get(identity) == "open"), identity
                if cases.get(identity) == "assigned":
                    assert booked.get(identity) == 1
            transfers = [bookings.c.customer_id.in_(ids), bookings.c.type == domain.PAYMENT,
                         bookings.c.payment_method == "U"]
            paid = s.execute(select(func.coalesce(func.sum(bookings.c.amount), 0)).where(
                *transfers)).scalar_one()
            assert paid == sum((real[i] for i in booked), Decimal("0"))
            # counted independently of the identities: every real payment of the files imported is
            # one booking or one open Klärfall
            open_cases = s.execute(select(func.count(), func.coalesce(func.sum(bank_clarifications.c.amount), 0))
                                   .where(bank_clarifications.c.status == "open",
                                          bank_clarifications.c.transaction_id.in_(list(real) or [""]))).one()
            want = [a for f in imported for a in expected[f]]
            assert len(booked) + open_cases[0] == len(want)
            assert paid + open_cases[1] == sum(want, Decimal("0"))
            # nothing of another account or pending: every payment booked is a real one
            assert s.execute(select(func.count()).select_from(bookings).where(
                *transfers)).scalar_one() == len(booked)
            # SEPA: an invoice is collected once, a debit returned at most once, and exactly the
            # returned ones are reversed
            debits = s.execute(select(sepa_debits).where(sepa_debits.c.customer_id.in_(ids))).all()
            assert len({d.invoice_id for d in debits}) == len(debits)
            for d in debits:
                original = s.execute(select(bookings.c.id, bookings.c.amount).where(
                    bookings.c.payment_id == d.payment_id)).one()
                assert original.amount == d.amount
                reversals = s.execute(select(bookings.c.amount).where(
                    bookings.c.reverses_booking_id == original.id)).scalars().all()
                assert reversals == ([-d.amount] if d.status == "returned" else [])
            fees = s.execute(select(func.count()).select_from(bookings).where(
                bookings.c.customer_id.in_(ids), bookings.c.type == sepa.FEE)).scalar_one()
            assert fees == sum(1 for d in debits if d.status == "returned")
