"""Zugang: short-lived, signed, single-use login links into the external admin panels.

The URL carries a token signed with ``itsdangerous`` (HMAC-SHA1 over a timestamped
payload: jti, contract, panel). The jti is stored; redeeming marks it used in one
conditional UPDATE, so a link works once, only before it expires, and never
contains a password.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import Row, select, update

from kc_catalog.domain.common import RUNNING
from kc_catalog.domain.contracts import load_contract
from kc_catalog.models import contracts, login_tokens
from kc_common.db import UnitOfWork, as_utc, utcnow
from kc_common.errors import Conflict, Unauthenticated, Unprocessable

SALT = "kc-catalog-panel-login"


def serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=SALT)


def create_link(uow: UnitOfWork, customer_id: int, contract_id: int, *, secret: str,
                panel_urls: Mapping[str, str], ttl: int, client_ip: str | None = None) -> dict[str, Any]:
    """A login URL for the owner's running hosting package or server."""
    row = load_contract(uow.session, customer_id, contract_id)
    panel = (row.attributes or {}).get("access")
    if not panel:
        raise Unprocessable("Für dieses Produkt gibt es keinen Login.", {"contract_id": contract_id})
    if row.status not in RUNNING:
        raise Conflict("Ein Login ist nur für laufende Verträge möglich.", {"status": row.status})
    jti = str(uuid.uuid4())
    now = utcnow()
    expires = now + dt.timedelta(seconds=ttl)
    uow.session.execute(login_tokens.insert().values(
        jti=jti, contract_id=row.id, customer_id=customer_id, panel=panel, created_at=now,
        expires_at=expires, client_ip=client_ip))
    token = serializer(secret).dumps({"j": jti, "c": row.id, "p": panel})
    base = panel_urls[panel]
    url = f"{base}{'&' if '?' in base else '?'}{urlencode({'token': token})}"
    return {"url": url, "panel": panel, "expires_at": expires, "contract_id": row.id}


def redeem(uow: UnitOfWork, token: str, *, secret: str, ttl: int) -> dict[str, Any]:
    """For the panel: check the token, mark it used (once) and say whom to log in."""
    try:
        payload = serializer(secret).loads(token, max_age=ttl)
        jti, contract_id, panel = payload["j"], payload["c"], payload["p"]
    except SignatureExpired:
        raise Unauthenticated("Der Login-Link ist abgelaufen.") from None
    except (BadSignature, KeyError, TypeError):
        raise Unauthenticated("Der Login-Link ist ungültig.") from None
    now = utcnow()
    used = uow.session.execute(  # type: ignore[attr-defined]  # a DML statement's CursorResult
        update(login_tokens).where(login_tokens.c.jti == jti, login_tokens.c.used_at.is_(None),
                                   login_tokens.c.expires_at > now, login_tokens.c.contract_id == contract_id)
        .values(used_at=now)).rowcount
    if used != 1:
        row = uow.session.execute(select(login_tokens).where(login_tokens.c.jti == jti)).first()
        if row is not None and row.used_at is not None:
            raise Conflict("Der Login-Link wurde bereits verwendet.")
        raise Unauthenticated("Der Login-Link ist abgelaufen oder ungültig.")
    contract = uow.session.execute(select(contracts).where(contracts.c.id == contract_id)).first()
    if contract is None or contract.status not in RUNNING:
        raise Conflict("Der Vertrag läuft nicht mehr.")
    token_row: Row[Any] = uow.session.execute(  # type: ignore[assignment]  # marked used above
        select(login_tokens).where(login_tokens.c.jti == jti)).first()
    return {"contract_id": contract.id, "customer_id": contract.customer_id, "panel": panel,
            "account": contract.label or contract.domain, "product_id": contract.product_id,
            "issued_at": as_utc(token_row.created_at)}
