"""The data-processing agreement (AV-Vertrag; texts in ``kc_identity.av``): status and signing."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from kc_common.db import UnitOfWork, utcnow
from kc_common.errors import Conflict, ValidationFailed
from kc_identity import av
from kc_identity.domain.customers import get_customer_row
from kc_identity.models import av_signatures


def _signature_view(r: Row[Any]) -> dict[str, Any]:
    return {"id": r.id, "version": r.version, "title": r.title, "signer_name": r.signer_name,
            "signer_position": r.signer_position, "signed_at": r.signed_at, "client_ip": r.client_ip,
            "text_sha256": r.text_sha256}


def av_status(session: Session, customer_id: int) -> dict[str, Any]:
    get_customer_row(session, customer_id)
    current = av.current()
    rows = session.execute(select(av_signatures).where(av_signatures.c.customer_id == customer_id)
                           .order_by(av_signatures.c.signed_at.desc())).all()
    return {"current": {"version": current.version, "title": current.title, "text": current.text,
                        "valid_from": current.valid_from, "text_sha256": current.sha256},
            "signed": any(r.version == current.version for r in rows),
            "signatures": [_signature_view(r) for r in rows]}


def sign_av(uow: UnitOfWork, customer_id: int, data: dict[str, Any], client_ip: str | None) -> dict[str, Any]:
    session = uow.session
    row = get_customer_row(session, customer_id, lock=True)
    current = av.current()
    errors = {}
    for field, label in (("signer_name", "Namen"), ("signer_position", "Position")):
        value = " ".join((data.get(field) or "").split())
        if not value:
            errors[field] = [f"Bitte geben Sie Ihren {label} an." if field == "signer_name"
                             else "Bitte geben Sie Ihre Position an (z. B. Geschäftsführer)."]
        data[field] = value
    if data.get("accept") is not True:
        errors["accept"] = ["Bitte bestätigen Sie, dass Sie die Vereinbarung abschließen."]
    if errors:
        raise ValidationFailed("Bitte prüfen Sie die markierten Felder.", fields=errors)
    if data.get("version") != current.version:
        raise Conflict("Es gibt eine neue Fassung der Vereinbarung. Bitte lesen Sie sie und bestätigen Sie "
                       "die aktuelle Version.", {"reason": "new_version", "current_version": str(current.version)})
    if session.execute(select(av_signatures.c.id).where(av_signatures.c.customer_id == customer_id,
                                                        av_signatures.c.version == current.version)).first():
        raise Conflict("Diese Fassung der Vereinbarung haben Sie bereits abgeschlossen.")
    now = utcnow()
    signature_id = str(uuid.uuid4())
    session.execute(av_signatures.insert().values(
        id=signature_id, customer_id=customer_id, version=current.version, title=current.title,
        text_sha256=current.sha256, signer_name=data["signer_name"],
        signer_position=data["signer_position"], client_ip=client_ip, signed_at=now))
    uow.emit("av_agreement_signed", {
        "agreement_id": signature_id, "customer_id": customer_id, "version": current.version,
        "title": current.title, "text": current.text, "signed_at": now,
        "signer_name": data["signer_name"], "signer_position": data["signer_position"],
        "client_ip": client_ip,
        "customer": {k: row._mapping[k] for k in ("company", "first_name", "last_name", "street", "zip",
                                                  "city", "country")}})
    return _signature_view(session.execute(select(av_signatures)  # type: ignore[arg-type]  # inserted just above
                                           .where(av_signatures.c.id == signature_id)).first())
