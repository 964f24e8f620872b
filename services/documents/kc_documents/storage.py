"""Where document files live: a small interface, two adapters.

* :class:`LocalStorage` (default): files under a directory
  (``DOCUMENTS_STORAGE_PATH``, default ``var/documents``), written atomically
  (temp file + rename). Enough for one host, or several instances on a shared
  volume.
* :class:`S3Storage` (``DOCUMENTS_STORAGE=s3``): an S3-compatible bucket
  (AWS, MinIO, Ceph…) for instances on several hosts. It needs ``boto3``,
  which is deliberately *not* a dependency of this repository (heavy, and
  not testable here without a bucket): install it where the S3 adapter is
  used. The adapter talks to any object with boto3's ``put_object`` /
  ``get_object`` / ``head_object`` calls; its tests use a stub client.

Keys are relative paths like ``invoices/100001/RE-2026-000001-<sha>.pdf``; the
database stores the key and the sha256 of the bytes; :func:`checked_get`
verifies the checksum on every read.
"""
import hashlib
from pathlib import Path

from kc_common.errors import NotFound
from kc_common.files import atomic_write


def sha256(data):
    return hashlib.sha256(data).hexdigest()


class StorageCorrupt(RuntimeError):
    pass


class Storage:
    def put(self, key, data, content_type="application/pdf"):
        raise NotImplementedError

    def get(self, key):
        raise NotImplementedError

    def exists(self, key):
        raise NotImplementedError

    def delete(self, key):
        """Remove a file (gone already: nothing to do)."""
        raise NotImplementedError


def _check_key(key):
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid storage key {key!r}")
    return key


class LocalStorage(Storage):
    def __init__(self, root):
        self.root = Path(root).resolve()

    def _path(self, key):
        return self.root / _check_key(key)

    def put(self, key, data, content_type="application/pdf"):
        atomic_write(self._path(key), data)

    def get(self, key):
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise NotFound("Das Dokument ist nicht (mehr) vorhanden.") from None

    def exists(self, key):
        return self._path(key).is_file()

    def delete(self, key):
        self._path(key).unlink(missing_ok=True)


class S3Storage(Storage):
    def __init__(self, bucket, prefix="", client=None, **client_kwargs):
        if client is None:  # pragma: no cover - needs boto3 and a bucket
            import boto3
            client = boto3.client("s3", **client_kwargs)
        self.client, self.bucket, self.prefix = client, bucket, prefix.strip("/")

    def _key(self, key):
        key = _check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key, data, content_type="application/pdf"):
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data,
                               ContentType=content_type,
                               ChecksumAlgorithm="SHA256")

    def get(self, key):
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except Exception as exc:  # botocore's NoSuchKey is a ClientError subclass
            if "NoSuchKey" in type(exc).__name__ or "404" in str(exc) or "NoSuchKey" in str(exc):
                raise NotFound("Das Dokument ist nicht (mehr) vorhanden.") from None
            raise

    def delete(self, key):
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def exists(self, key):
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except Exception:
            return False


def checked_get(storage, key, expected_sha256):
    data = storage.get(key)
    if expected_sha256 and sha256(data) != expected_sha256:
        raise StorageCorrupt(f"checksum mismatch for {key}")
    return data


def from_config(config):
    kind = (config.get("DOCUMENTS_STORAGE") or "local").lower()
    if kind == "local":
        return LocalStorage(config.get("DOCUMENTS_STORAGE_PATH") or "var/documents")
    if kind == "s3":
        kwargs = {}
        if config.get("S3_ENDPOINT_URL"):
            kwargs["endpoint_url"] = config["S3_ENDPOINT_URL"]
        return S3Storage(config["S3_BUCKET"], prefix=config.get("S3_PREFIX") or "", **kwargs)
    raise RuntimeError(f"unknown DOCUMENTS_STORAGE {kind!r} (local or s3)")
