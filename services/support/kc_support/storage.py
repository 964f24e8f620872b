"""Attachment bytes outside the database: a small content-addressed store.

The key of a file is its sha256 (hex). ``LocalStore`` keeps files under a
directory (config ``ATTACHMENT_DIR``) as ``<root>/<ab>/<cd>/<sha256>``, written
atomically (temporary file + rename), verified on every read. Several service
instances share one directory (a shared volume); a different backend (S3, …)
only needs ``put`` and ``get``.

Files are written before the database transaction that references them
commits; a rollback can leave an unreferenced file behind (harmless: same
content, same key). Nothing deletes files yet.
"""
import hashlib
import os

from nameko.extensions import DependencyProvider

from kc_common.files import atomic_write

DEFAULT_DIR = "var/support-attachments"


class StoreError(RuntimeError):
    pass


def sha256_of(data):
    return hashlib.sha256(data).hexdigest()


class LocalStore:
    def __init__(self, root):
        self.root = os.path.abspath(root)

    def _path(self, key):
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            raise StoreError(f"not a sha256 key: {key!r}")
        return os.path.join(self.root, key[:2], key[2:4], key)

    def put(self, data):
        """Store ``data``; returns its sha256 (the key). Storing the same bytes twice is a no-op."""
        key = sha256_of(data)
        path = self._path(key)
        if os.path.exists(path):
            return key
        atomic_write(path, data)
        return key

    def get(self, key):
        """The bytes stored under ``key``; raises :class:`StoreError` if missing or corrupt."""
        path = self._path(key)
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            raise StoreError(f"attachment {key} is missing from the store") from None
        if sha256_of(data) != key:
            raise StoreError(f"attachment {key} is corrupt (checksum mismatch)")
        return data

    def exists(self, key):
        return os.path.exists(self._path(key))


class AttachmentStorage(DependencyProvider):
    """Injects the service's :class:`LocalStore` (``ATTACHMENT_DIR``)."""

    def setup(self):
        self.store = LocalStore(self.container.config.get("ATTACHMENT_DIR") or DEFAULT_DIR)

    def get_dependency(self, worker_ctx):
        return self.store
