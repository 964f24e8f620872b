"""Re-encrypt every telephone password and TOTP secret with the first key of PHONE_PASSWORD_KEYS.

``python -m kc_identity.rotate_keys services/identity/config.yaml``
"""
import sys

from sqlalchemy import select, update

from kc_common.db import StandaloneDatabase
from kc_common.manage import load_config
from kc_identity.models import customers, metadata
from kc_identity.vault import Vault

# Every column the vault encrypts: the telephone password, the active and the pending TOTP secret.
ENCRYPTED_COLUMNS = ("phone_password_enc", "totp_secret_enc", "totp_pending_enc")


def rotate(db, vault):
    """Re-encrypt every stored value with the vault's first key; the number of values."""
    count = 0
    with db.unit_of_work() as uow:
        for name in ENCRYPTED_COLUMNS:
            column = customers.c[name]
            rows = uow.session.execute(select(customers.c.id, column)
                                       .where(column.is_not(None)).with_for_update()).all()
            for row in rows:
                uow.session.execute(update(customers).where(customers.c.id == row.id)
                                    .values({name: vault.rotate(row[1])}))
                count += 1
    return count


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    config = load_config(argv[0])
    db = StandaloneDatabase(metadata, config["DATABASE_URL"], "identity")
    print(f"re-encrypted {rotate(db, Vault(config.get('PHONE_PASSWORD_KEYS')))} value(s) "
          "(telephone passwords, TOTP secrets)")
    db.engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
