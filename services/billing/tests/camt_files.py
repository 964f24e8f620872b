"""Real-world-shaped camt.053 / camt.054 files (as German banks send them, DK format).

Every file built here is valid against the official XSD of its version (the tests check it):
a statement has its balances, every entry its bank transaction code (SEPA credit transfer
``PMNT/RCDT/ESCT`` + the DK ``NTRF+166``), transfers typed into online banking carry
``EndToEndId`` ``NOTPROVIDED``.
"""
import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from xml.sax.saxutils import escape

SELLER_IBAN = "DE89370400440532013000"
OTHER_IBAN = "DE02120300000000202051"


@dataclass
class Tx:
    amount: str
    remittance: str = ""
    payer: str = "Max Mustermann"
    payer_iban: str = "DE44500105175407324931"
    acct_svcr_ref: str | None = None        # on the entry
    tx_acct_svcr_ref: str | None = None     # in TxDtls/Refs
    ntry_ref: str | None = None
    end_to_end: str = "NOTPROVIDED"
    status: str = "BOOK"
    direction: str = "CRDT"
    currency: str = "EUR"
    day: dt.date = field(default_factory=lambda: dt.date(2026, 11, 26))
    return_reason: str | None = None         # RtrInf/Rsn/Cd (a return debit)
    mandate_id: str | None = None
    batch: list | None = None                # [(amount, remittance, payer), ...]: one entry, several TxDtls


def _bktxcd(direction, return_reason):
    if return_reason:
        return ("<BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>IDDT</Cd><SubFmlyCd>UPDD</SubFmlyCd></Fmly>"
                "</Domn><Prtry><Cd>NRTI+109</Cd><Issr>DK</Issr></Prtry></BkTxCd>")
    if direction == "DBIT":
        return ("<BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>ICDT</Cd><SubFmlyCd>ESCT</SubFmlyCd></Fmly>"
                "</Domn><Prtry><Cd>NTRF+116</Cd><Issr>DK</Issr></Prtry></BkTxCd>")
    return ("<BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>ESCT</SubFmlyCd></Fmly>"
            "</Domn><Prtry><Cd>NTRF+166</Cd><Issr>DK</Issr></Prtry></BkTxCd>")


def _txdtls(tx, version, amount=None, remittance=None, payer=None, with_amount=False):
    v8 = version.endswith("08")
    amount = amount or tx.amount
    refs = "<Refs>"
    if tx.tx_acct_svcr_ref:
        refs += f"<AcctSvcrRef>{tx.tx_acct_svcr_ref}</AcctSvcrRef>"
    refs += f"<EndToEndId>{tx.end_to_end}</EndToEndId>"
    if tx.mandate_id:
        refs += f"<MndtId>{tx.mandate_id}</MndtId>"
    refs += "</Refs>"
    if v8:
        amt = f'<Amt Ccy="{tx.currency}">{amount}</Amt><CdtDbtInd>{tx.direction}</CdtDbtInd>'
    else:
        amt = f'<AmtDtls><TxAmt><Amt Ccy="{tx.currency}">{amount}</Amt></TxAmt></AmtDtls>' if with_amount else ""
    name = escape(payer if payer is not None else tx.payer)
    party = (f"<Dbtr><Pty><Nm>{name}</Nm></Pty></Dbtr>" if v8 else f"<Dbtr><Nm>{name}</Nm></Dbtr>")
    parties = f"<RltdPties>{party}<DbtrAcct><Id><IBAN>{tx.payer_iban}</IBAN></Id></DbtrAcct></RltdPties>"
    remittance = tx.remittance if remittance is None else remittance
    rmt = f"<RmtInf><Ustrd>{escape(remittance)}</Ustrd></RmtInf>" if remittance else ""
    rtr = (f"<RtrInf><Rsn><Cd>{tx.return_reason}</Cd></Rsn></RtrInf>" if tx.return_reason else "")
    return f"<TxDtls>{refs}{amt}{parties}{rmt}{rtr}</TxDtls>"


def _entry(tx, version):
    v8 = version.endswith("08")
    out = "<Ntry>"
    if tx.ntry_ref:
        out += f"<NtryRef>{tx.ntry_ref}</NtryRef>"
    out += f'<Amt Ccy="{tx.currency}">{tx.amount}</Amt><CdtDbtInd>{tx.direction}</CdtDbtInd>'
    out += f"<Sts><Cd>{tx.status}</Cd></Sts>" if v8 else f"<Sts>{tx.status}</Sts>"
    out += f"<BookgDt><Dt>{tx.day.isoformat()}</Dt></BookgDt><ValDt><Dt>{tx.day.isoformat()}</Dt></ValDt>"
    if tx.acct_svcr_ref:
        out += f"<AcctSvcrRef>{tx.acct_svcr_ref}</AcctSvcrRef>"
    out += _bktxcd(tx.direction, tx.return_reason)
    if tx.batch:
        out += f"<NtryDtls><Btch><NbOfTxs>{len(tx.batch)}</NbOfTxs></Btch>"
        out += "".join(_txdtls(tx, version, a, r, p, with_amount=True) for a, r, p in tx.batch)
        out += "</NtryDtls>"
    else:
        out += f"<NtryDtls>{_txdtls(tx, version)}</NtryDtls>"
    return out + "</Ntry>"


def _balance(code, amount, day, version):
    return (f"<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp><Amt Ccy=\"EUR\">{amount}</Amt>"
            f"<CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>{day.isoformat()}</Dt></Dt></Bal>")


def statement(txs, iban=SELLER_IBAN, stmt_id="STMT-2026-11-26", version="camt.053.001.02",
              msg_id="MSG-20261126-1"):
    """A camt.053 statement (or, with version camt.054.*, a notification) of ``txs``."""
    day = txs[0].day if txs else dt.date(2026, 11, 26)
    ns = f"urn:iso:std:iso:20022:tech:xsd:{version}"
    is_054 = version.startswith("camt.054")
    acct = (f"<Acct><Id><IBAN>{iban}</IBAN></Id><Ccy>EUR</Ccy>"
            "<Svcr><FinInstnId><BIC>COBADEFFXXX</BIC></FinInstnId></Svcr></Acct>")
    if version.endswith("08"):
        acct = acct.replace("<BIC>", "<BICFI>").replace("</BIC>", "</BICFI>")
    head = (f"<Id>{stmt_id}</Id><ElctrncSeqNb>1</ElctrncSeqNb>"
            f"<CreDtTm>{day.isoformat()}T22:00:00</CreDtTm>{acct}")
    entries = "".join(_entry(tx, version) for tx in txs)
    if is_054:
        body = f"<BkToCstmrDbtCdtNtfctn>{_grphdr(msg_id, day)}<Ntfctn>{head}{entries}</Ntfctn></BkToCstmrDbtCdtNtfctn>"
    else:
        total = sum((Decimal(t.amount) * (1 if t.direction == "CRDT" else -1) for t in txs
                     if t.status == "BOOK"), Decimal("1000.00"))
        bal = _balance("PRCD", "1000.00", day, version) + _balance("CLBD", f"{abs(total):.2f}", day, version)
        body = f"<BkToCstmrStmt>{_grphdr(msg_id, day)}<Stmt>{head}{bal}{entries}</Stmt></BkToCstmrStmt>"
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Document xmlns="{ns}" '
            f'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">{body}</Document>').encode()


def _grphdr(msg_id, day):
    return (f"<GrpHdr><MsgId>{msg_id}</MsgId><CreDtTm>{day.isoformat()}T22:00:00</CreDtTm>"
            "<MsgPgntn><PgNb>1</PgNb><LastPgInd>true</LastPgInd></MsgPgntn></GrpHdr>")
