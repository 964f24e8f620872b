"""Base data for ``make run`` (idempotent): the document library's entries and built-in versions.

Invoices and AV agreements are not seeded: they are rendered from billing's and identity's events.
"""
from kc_documents import domain


def seed(db, config):
    with db.unit_of_work() as uow:
        domain.ensure_library(uow.session)
