"""Base data for ``make run`` (idempotent): the document library's entries and built-in versions.

The built-in versions are rendered here once and kept in the storage, so the first download is
served from the storage (a download would render them too, but that would cost the first
customer a render inside the gateway's RPC timeout). Invoices and AV agreements are not seeded:
they are rendered from billing's and identity's events.
"""
from sqlalchemy import select

from kc_documents import domain, library, storage
from kc_documents.models import library_versions


def seed(db, config):
    with db.unit_of_work() as uow:
        domain.ensure_library(uow.session)
    store = storage.from_config(config)
    provider = library.provider_from_config(config)
    with db.unit_of_work() as uow:
        pending = uow.session.execute(select(library_versions).where(
            library_versions.c.template.is_not(None), library_versions.c.storage_key.is_(None))).all()
    for row in pending:
        data = library.render_library(row.template, library.template_context(
            row.slug, row.version, row.valid_from), provider)
        with db.unit_of_work() as uow:
            domain.save_rendered_version(uow.session, store, row, data)
