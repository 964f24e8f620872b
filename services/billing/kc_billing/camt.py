"""Bank statements (ISO 20022 camt.053 statements, camt.054 debit/credit notifications).

Every upload is validated against the official XSD of the message version its namespace
names (vendored in ``xsd/``, see its README): camt.053.001.02/.08 and camt.054.001.02/.08.
Anything else, or a document the schema rejects, is :class:`StatementInvalid` naming the
problem (line and schema message). Parsing uses lxml without network, DTDs or entity
expansion; a document with a DOCTYPE is refused.

:func:`parse` turns a document into *transactions*: one per entry (``Ntry``), or one per
``TxDtls`` of a batch entry whose transactions carry their own amounts. Each transaction has
an identity (``transaction_id``) that never merges two real payments:

1. the account servicer's reference of the transaction (``TxDtls/Refs/AcctSvcrRef``) or of
   the entry (``Ntry/AcctSvcrRef``; for a batch entry with the transaction's position), which
   the bank guarantees unique for the account, scoped by the account's IBAN;
2. else the entry reference ``NtryRef``, scoped by the account and the statement's id (it is
   unique only within a statement);
3. else a SHA-256 of the account, the statement's id, the entry's position and the entry's
   whole canonical XML (amount, dates, debtor, remittance ...).

The ``EndToEndId`` is never used: ``NOTPROVIDED`` is what every transfer typed into online
banking carries. Which transactions are booked is decided by the caller (``payments``).
"""
import datetime as dt
import hashlib
from decimal import Decimal, InvalidOperation
from pathlib import Path

from lxml import etree

XSD_DIR = Path(__file__).resolve().parent / "xsd"
PREFIX = "urn:iso:std:iso:20022:tech:xsd:"
# namespace -> (xsd file, root of the message, report element)
VERSIONS = {
    PREFIX + "camt.053.001.02": ("camt.053.001.02.xsd", "BkToCstmrStmt", "Stmt"),
    PREFIX + "camt.053.001.08": ("camt.053.001.08.xsd", "BkToCstmrStmt", "Stmt"),
    PREFIX + "camt.054.001.02": ("camt.054.001.02.xsd", "BkToCstmrDbtCdtNtfctn", "Ntfctn"),
    PREFIX + "camt.054.001.08": ("camt.054.001.08.xsd", "BkToCstmrDbtCdtNtfctn", "Ntfctn"),
}
BOOKED = "BOOK"
_schemas = {}


class StatementInvalid(ValueError):
    pass


def _schema(namespace):
    if namespace not in _schemas:
        _schemas[namespace] = etree.XMLSchema(etree.parse(str(XSD_DIR / VERSIONS[namespace][0])))
    return _schemas[namespace]


def _parser():
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                           huge_tree=False, remove_comments=True, remove_pis=True)


def validate(xml_bytes):
    """The parsed, schema-valid document and its namespace; else :class:`StatementInvalid`."""
    try:
        tree = etree.fromstring(xml_bytes, _parser()).getroottree()
    except etree.XMLSyntaxError as exc:
        raise StatementInvalid(f"Kein gültiges XML: {exc}") from None
    if tree.docinfo.doctype:
        raise StatementInvalid("Eine DOCTYPE-Deklaration ist nicht erlaubt.")
    root = tree.getroot()
    namespace = etree.QName(root).namespace or ""
    if etree.QName(root).localname != "Document" or namespace not in VERSIONS:
        accepted = ", ".join(ns.removeprefix(PREFIX) for ns in VERSIONS)
        found = namespace.removeprefix(PREFIX) or "ohne Namensraum"
        raise StatementInvalid(f"Nicht unterstütztes Format ({found}); erwartet wird eines von: "
                               f"{accepted}.")
    schema = _schema(namespace)
    if not schema.validate(tree):
        errors = [f"Zeile {e.line}: {e.message}" for e in list(schema.error_log)[:3]]
        raise StatementInvalid(f"Entspricht nicht dem XSD {namespace.removeprefix(PREFIX)}: "
                               + "; ".join(errors))
    return root, namespace


def _money(text):
    try:
        return Decimal(text.strip())
    except (InvalidOperation, AttributeError):
        return None


def _date(node, ns):
    if node is None:
        return None
    text = node.findtext("c:Dt", namespaces=ns) or node.findtext("c:DtTm", namespaces=ns)
    return dt.date.fromisoformat(text.strip()[:10]) if text else None


def _status(entry, ns):
    sts = entry.find("c:Sts", ns)
    if sts is None:
        return None
    code = sts.findtext("c:Cd", namespaces=ns)  # .08: <Sts><Cd>BOOK</Cd></Sts>
    return (code or sts.text or "").strip() or None


def _tx_amount(tx, ns):
    for path in ("c:Amt", "c:AmtDtls/c:TxAmt/c:Amt", "c:AmtDtls/c:InstdAmt/c:Amt"):
        node = tx.find(path, ns)
        if node is not None:
            return node
    return None


def _party_name(tx, role, ns):
    return (tx.findtext(f"c:RltdPties/c:{role}/c:Nm", namespaces=ns)
            or tx.findtext(f"c:RltdPties/c:{role}/c:Pty/c:Nm", namespaces=ns))


def _remittance(nodes, entry, ns):
    parts = []
    for tx in nodes:
        parts += [t.strip() for t in tx.xpath("c:RmtInf/c:Ustrd/text()", namespaces=ns) if t.strip()]
        parts += [t.strip() for t in tx.xpath("c:RmtInf/c:Strd/c:CdtrRefInf/c:Ref/text()",
                                              namespaces=ns) if t.strip()]
    if not parts:  # some banks carry the purpose only as additional information
        for path in ("c:NtryDtls/c:TxDtls/c:AddtlTxInf", "c:AddtlNtryInf"):
            parts += [t.strip() for t in entry.xpath(path + "/text()", namespaces=ns) if t.strip()]
    return " ".join(parts)


def _scoped(*parts):
    """An identity from the bank's references; hashed when it would not fit (100 chars)."""
    text = "|".join(parts)
    return text if len(text) <= 100 else "h:" + hashlib.sha256(text.encode()).hexdigest()


def parse(xml_bytes, max_entries=None):
    """All transactions of a validated camt.053/camt.054 document, in document order.

    Each: transaction_id, account (IBAN or other id), status (BOOK, PDNG, INFO ...), direction
    (CRDT/DBIT), reversal, amount (Decimal), currency, value_date, booking_date, reference
    (remittance text), payer, payer_iban, end_to_end_id, mandate_id, return_reason, position.
    More than ``max_entries`` transactions: :class:`StatementInvalid` (split the statement).
    """
    root, namespace = validate(xml_bytes)
    _, message, report = VERSIONS[namespace]
    ns = {"c": namespace}
    transactions = []
    for r_pos, rpt in enumerate(root.iterfind(f"c:{message}/c:{report}", ns), start=1):
        account = (rpt.findtext("c:Acct/c:Id/c:IBAN", namespaces=ns)
                   or rpt.findtext("c:Acct/c:Id/c:Othr/c:Id", namespaces=ns) or "").replace(" ", "").upper()
        report_id = rpt.findtext("c:Id", namespaces=ns) or f"#{r_pos}"
        for e_pos, entry in enumerate(rpt.iterfind("c:Ntry", ns), start=1):
            amount_el = entry.find("c:Amt", ns)
            details = entry.findall("c:NtryDtls/c:TxDtls", ns)
            split = len(details) > 1 and all(_tx_amount(tx, ns) is not None for tx in details)
            parts = [(i, tx, _tx_amount(tx, ns)) for i, tx in enumerate(details, start=1)] if split \
                else [(None, details[0] if details else None, amount_el)]
            entry_ref = entry.findtext("c:AcctSvcrRef", namespaces=ns)
            entry_hash = None
            for index, tx, amt in parts:
                if max_entries is not None and len(transactions) >= max_entries:
                    raise StatementInvalid(f"Der Kontoauszug enthält mehr als {max_entries} Umsätze; "
                                           "bitte teilen Sie ihn auf.")
                txs = [tx] if split else details
                tx_ref = tx.findtext("c:Refs/c:AcctSvcrRef", namespaces=ns) if tx is not None else None
                if tx_ref:
                    identity = _scoped(account, tx_ref)
                elif entry_ref:
                    identity = _scoped(account, entry_ref, *([f"#{index}"] if index else []))
                elif entry.findtext("c:NtryRef", namespaces=ns):
                    identity = _scoped(account, report_id, "N:" + entry.findtext("c:NtryRef", namespaces=ns),
                                       *([f"#{index}"] if index else []))
                else:
                    if entry_hash is None:
                        entry_hash = hashlib.sha256(etree.tostring(entry, method="c14n")).hexdigest()
                    identity = "h:" + hashlib.sha256("|".join(
                        [account, report_id, str(r_pos), str(e_pos), str(index or 0), entry_hash]
                    ).encode()).hexdigest()
                direction = entry.findtext("c:CdtDbtInd", namespaces=ns)
                if tx is not None and split and tx.findtext("c:CdtDbtInd", namespaces=ns):
                    direction = tx.findtext("c:CdtDbtInd", namespaces=ns)
                find = (lambda path, tx=tx: tx.findtext(path, namespaces=ns)) if tx is not None else (lambda path: None)
                transactions.append({
                    "transaction_id": identity, "account": account,
                    "status": _status(entry, ns), "direction": direction,
                    "reversal": (entry.findtext("c:RvslInd", namespaces=ns) or "").strip() == "true",
                    "amount": _money(amt.text), "currency": amt.get("Ccy"),
                    "value_date": _date(entry.find("c:ValDt", ns), ns),
                    "booking_date": _date(entry.find("c:BookgDt", ns), ns),
                    "reference": _remittance(txs, entry, ns)[:500],
                    "payer": (_party_name(tx, "Dbtr", ns) if tx is not None else None),
                    "payer_iban": ((find("c:RltdPties/c:DbtrAcct/c:Id/c:IBAN") or "").replace(" ", "").upper()
                                   or None),
                    "end_to_end_id": find("c:Refs/c:EndToEndId"),
                    "mandate_id": find("c:Refs/c:MndtId"),
                    "return_reason": find("c:RtrInf/c:Rsn/c:Cd"),
                    "position": f"{report_id} / Umsatz {e_pos}" + (f".{index}" if index else ""),
                })
    return transactions
