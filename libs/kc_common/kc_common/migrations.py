"""Alembic glue shared by every service's ``migrations/env.py``."""

from __future__ import annotations

from alembic import context
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, pool

from kc_common.db import make_engine


def alembic_config(package: str, url: str) -> Config:
    """Alembic config for ``kc_<service>``'s migrations (``<package>/migrations``)."""
    cfg = Config()
    cfg.set_main_option("script_location", f"{package}:migrations")
    cfg.set_main_option("sqlalchemy.url", url)
    cfg.attributes["database_url"] = url
    return cfg


def run_env(metadata: MetaData) -> None:
    """Body of every ``env.py``: online migrations against ``sqlalchemy.url``."""
    config = context.config
    url: str = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")  # type: ignore[assignment]
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, literal_binds=True,
                          render_as_batch=url.startswith("sqlite"))
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata,
                          render_as_batch=url.startswith("sqlite"), compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


def current_and_head(package: str, url: str) -> tuple[str | None, str | None]:
    """(revision the database is at, revision the code expects)."""
    script = ScriptDirectory.from_config(alembic_config(package, url))
    engine = make_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
    return current, script.get_current_head()


def add_outbox_lease() -> None:
    """Migration step shared by every service: the outbox relay's claim lease column."""
    import sqlalchemy as sa
    from alembic import op
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True))


def drop_outbox_lease() -> None:
    from alembic import op
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("claimed_until")
