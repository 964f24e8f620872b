"""Bank statement import (ISO 20022 CAMT.053): incoming transfers booked by reference.

Parsing uses the standard library's XML parser (expat, protected against entity
expansion attacks); only credit entries (``CdtDbtInd`` = ``CRDT``) in EUR are
considered. Each entry is booked through :func:`payments.book_transfer`, so
importing the same statement twice books every line once (its bank reference is
unique); entries without a ``KC<Kundennummer>`` reference are reported, not booked.
"""
import datetime as dt
from decimal import Decimal, InvalidOperation
from xml.etree import ElementTree


class StatementInvalid(ValueError):
    pass


def _local(tag):
    return tag.rsplit("}", 1)[-1]


def _find(node, *path):
    for name in path:
        if node is None:
            return None
        node = next((child for child in node if _local(child.tag) == name), None)
    return node


def _text(node, *path):
    found = _find(node, *path)
    return found.text.strip() if found is not None and found.text else None


def _iter(node, name):
    return (el for el in node.iter() if _local(el.tag) == name)


def parse(xml_bytes, max_entries=None):
    """Credit entries of a CAMT.053 document: transaction_id, amount, value_date, reference, payer.

    More than ``max_entries`` credit entries: :class:`StatementInvalid` (split the statement).
    """
    try:
        root = ElementTree.fromstring(xml_bytes)
    except ElementTree.ParseError as exc:
        raise StatementInvalid(f"Kein gültiges XML: {exc}")
    if not any(_local(el.tag) == "BkToCstmrStmt" for el in root.iter()):
        raise StatementInvalid("Kein CAMT.053-Kontoauszug (BkToCstmrStmt fehlt).")
    entries = []
    for stmt in _iter(root, "Stmt"):
        stmt_id = _text(stmt, "Id") or "stmt"
        for n, entry in enumerate(_iter(stmt, "Ntry"), start=1):
            if _text(entry, "CdtDbtInd") != "CRDT":
                continue
            amount_el = _find(entry, "Amt")
            if amount_el is None or amount_el.get("Ccy", "EUR") != "EUR":
                continue
            try:
                amount = Decimal(amount_el.text.strip())
            except (InvalidOperation, AttributeError):
                raise StatementInvalid(f"Eintrag {n}: Betrag ungültig.")
            details = _find(entry, "NtryDtls", "TxDtls")
            reference = " ".join(el.text.strip() for el in _iter(entry, "Ustrd") if el.text)
            transaction_id = (_text(entry, "AcctSvcrRef")
                              or _text(details, "Refs", "AcctSvcrRef")
                              or _text(details, "Refs", "EndToEndId")
                              or f"{stmt_id}-{n}")
            value_date = _text(entry, "ValDt", "Dt") or _text(entry, "BookgDt", "Dt")
            if max_entries is not None and len(entries) >= max_entries:
                raise StatementInvalid(f"Der Kontoauszug enthält mehr als {max_entries} Gutschriften; "
                                       "bitte teilen Sie ihn auf.")
            entries.append({
                "transaction_id": transaction_id[:100], "amount": amount,
                "value_date": dt.date.fromisoformat(value_date[:10]) if value_date else None,
                "reference": reference[:500] or "(ohne Verwendungszweck)",
                "payer": _text(details, "RltdPties", "Dbtr", "Nm")})
    return entries
