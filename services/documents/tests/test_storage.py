"""The storage adapters: local directory (default) and S3-compatible (stub client)."""
import io

import pytest

from kc_common.errors import NotFound
from kc_documents.storage import (
    LocalStorage,
    S3Storage,
    StorageCorrupt,
    checked_get,
    sha256,
)


def test_local_storage_round_trip_and_checksum(tmp_path):
    store = LocalStorage(tmp_path)
    store.put("invoice/100001/RE-1-abc.pdf", b"%PDF-1.7 data")
    assert store.exists("invoice/100001/RE-1-abc.pdf")
    assert checked_get(store, "invoice/100001/RE-1-abc.pdf", sha256(b"%PDF-1.7 data")) == b"%PDF-1.7 data"
    with pytest.raises(StorageCorrupt):
        checked_get(store, "invoice/100001/RE-1-abc.pdf", sha256(b"other"))
    with pytest.raises(NotFound):
        store.get("invoice/100001/missing.pdf")
    for bad in ["../x.pdf", "/etc/passwd", "a//b", "a/./b", ""]:
        with pytest.raises(ValueError):
            store.put(bad, b"x")
    assert not list(tmp_path.rglob(".tmp-*"))


class StubS3:
    """The three boto3 S3 client calls the adapter uses."""

    class NoSuchKey(Exception):
        pass

    def __init__(self):
        self.objects = {}

    def put_object(self, Bucket, Key, Body, ContentType, ChecksumAlgorithm):
        self.objects[(Bucket, Key)] = (Body, ContentType)

    def get_object(self, Bucket, Key):
        if (Bucket, Key) not in self.objects:
            raise self.NoSuchKey(Key)
        return {"Body": io.BytesIO(self.objects[(Bucket, Key)][0])}

    def head_object(self, Bucket, Key):
        if (Bucket, Key) not in self.objects:
            raise self.NoSuchKey(Key)
        return {}


def test_s3_storage_with_prefix():
    client = StubS3()
    store = S3Storage("docs", prefix="kc/", client=client)
    store.put("library/agb/1.0.pdf", b"%PDF-")
    assert client.objects[("docs", "kc/library/agb/1.0.pdf")] == (b"%PDF-", "application/pdf")
    assert store.get("library/agb/1.0.pdf") == b"%PDF-" and store.exists("library/agb/1.0.pdf")
    assert not store.exists("nope.pdf")
    with pytest.raises(NotFound):
        store.get("nope.pdf")


def test_seed_renders_the_built_in_library_versions_once(config):
    from sqlalchemy import select

    from kc_common.db import StandaloneDatabase
    from kc_documents import demo
    from kc_documents.models import library_versions, metadata
    db = StandaloneDatabase(metadata, config["DATABASE_URL"], "documents")
    try:
        demo.seed(db, config)
        with db.unit_of_work() as uow:
            rows = uow.session.execute(select(library_versions)).all()
        assert len(rows) == 6 and all(r.storage_key and len(r.sha256) == 64 for r in rows)
        demo.seed(db, config)  # idempotent: nothing rendered again
        with db.unit_of_work() as uow:
            assert uow.session.execute(select(library_versions)).all() == rows
    finally:
        db.engine.dispose()
