"""Re-encrypt every telephone password with the first key of PHONE_PASSWORD_KEYS.

``python -m kc_identity.rotate_keys services/identity/config.yaml``
"""
import sys

from sqlalchemy import select, update

from kc_common.db import StandaloneDatabase
from kc_common.manage import load_config
from kc_identity.models import customers, metadata
from kc_identity.vault import Vault


def rotate(db, vault):
    count = 0
    with db.unit_of_work() as uow:
        rows = uow.session.execute(select(customers.c.id, customers.c.phone_password_enc)
                                   .where(customers.c.phone_password_enc.is_not(None))
                                   .with_for_update()).all()
        for row in rows:
            uow.session.execute(update(customers).where(customers.c.id == row.id)
                                .values(phone_password_enc=vault.rotate(row.phone_password_enc)))
            count += 1
    return count


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    config = load_config(argv[0])
    db = StandaloneDatabase(metadata, config["DATABASE_URL"], "identity")
    print(f"re-encrypted {rotate(db, Vault(config.get('PHONE_PASSWORD_KEYS')))} telephone password(s)")
    db.engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
