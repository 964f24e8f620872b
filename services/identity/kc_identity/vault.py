"""Encryption at rest of the telephone password: Fernet (AES-CBC + HMAC-SHA256, i.e.
authenticated encryption) with keys from configuration.

``PHONE_PASSWORD_KEYS`` is a comma-separated list of Fernet keys; the first
encrypts, every key decrypts (``MultiFernet``). Rotation: put a new key first,
restart, run ``python -m kc_identity.rotate_keys CONFIG`` (re-encrypts every
stored value with the first key), then drop the old key.
"""
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from nameko.extensions import DependencyProvider


class Vault:
    def __init__(self, keys):
        keys = [k.strip() for k in (keys or "").split(",") if k.strip()] if isinstance(keys, str) \
            else [k for k in (keys or ()) if k]
        if not keys:
            raise RuntimeError("PHONE_PASSWORD_KEYS is not configured")
        self._fernet = MultiFernet([Fernet(k.encode() if isinstance(k, str) else k) for k in keys])

    def encrypt(self, plain):
        return self._fernet.encrypt(plain.encode()).decode("ascii")

    def decrypt(self, token):
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode()
        except InvalidToken as err:
            raise RuntimeError("telephone password cannot be decrypted with the configured keys") from err

    def rotate(self, token):
        return self._fernet.rotate(token.encode("ascii")).decode("ascii")


class VaultProvider(DependencyProvider):
    """Fails fast at start when no key is configured."""

    def setup(self):
        self.vault = Vault(self.container.config.get("PHONE_PASSWORD_KEYS"))

    def get_dependency(self, worker_ctx):
        return self.vault
