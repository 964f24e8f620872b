"""Attachment checks without a bus: limits, type by content, sanitised names, the store."""
import base64

import pytest

from kc_common.errors import ValidationFailed
from kc_support.attachments import Limits, check_uploads, detect_type, safe_name
from kc_support.storage import LocalStore, StoreError, sha256_of

from .files import EXE, LOG, PDF, PNG, upload, zip_bytes

LIMITS = Limits(max_file_bytes=1000, max_total_bytes=1500, max_files=3)


@pytest.mark.parametrize("data, mime", [
    (PNG, "image/png"), (PDF, "application/pdf"), (LOG, "text/plain"),
    ("Grüße aus Köln\r\n".encode("cp1252"), "text/plain"), (None, "application/zip"),
    (EXE, None), (b"\x00\x01\x02binary", None), (b"\x1b[31mterminal escape\n", None),
])
def test_type_is_detected_from_the_content(data, mime):
    assert detect_type(zip_bytes() if data is None else data) == mime


@pytest.mark.parametrize("raw, mime, expected", [
    ("Screenshot 1.PNG", "image/png", "Screenshot_1.png"),
    ("../../etc/passwd", "text/plain", "passwd.txt"),
    ("C:\\Users\\max\\Rechnung März.pdf", "application/pdf", "Rechnung_Marz.pdf"),
    ("äöü", "application/pdf", "aou.pdf"),
    ("", "image/png", "anhang.png"),
    (".htaccess", "text/plain", "htaccess.txt"),
    ("fehler.log", "text/plain", "fehler.log"),
    ("foto.jpeg", "image/png", None),          # extension contradicts the content
    ("rechnung.pdf", "image/png", None),
])
def test_names_are_sanitised_and_must_fit_the_content(raw, mime, expected):
    assert safe_name(raw, mime) == expected


def test_good_uploads_pass_with_detected_type_and_clean_name():
    uploads = check_uploads([upload("bild.png", PNG, "text/html"), upload("../x.pdf", PDF)], LIMITS)
    assert [(u.filename, u.content_type, u.data) for u in uploads] == [
        ("bild.png", "image/png", PNG), ("x.pdf", "application/pdf", PDF)]


@pytest.mark.parametrize("files, field, text", [
    ([upload("rechnung.pdf", EXE, "application/pdf")], "attachments.0", "nicht erlaubt"),
    ([upload("programm.exe", EXE)], "attachments.0", "nicht erlaubt"),
    ([upload("bild.pdf", PNG)], "attachments.0", "passt nicht"),
    ([upload("a.pdf", PDF), upload("gross.txt", b"x" * 1001)], "attachments.1", "größer als"),
    ([upload("leer.txt", b"")], "attachments.0", "leer"),
    ([upload("a.txt", b"a" * 800), upload("b.txt", b"b" * 800)], "attachments", "zusammen"),
    ([upload("a.txt", b"a")] * 4, "attachments", "Höchstens 3"),
    ([upload("a.txt", b"a", field="datei")], "datei", "Unbekanntes Feld"),
    ([{"field": "attachments", "filename": "a.txt", "content_b64": "%%%"}], "attachments.0", "nicht lesbar"),
])
def test_bad_uploads_are_refused_naming_the_field(files, field, text):
    with pytest.raises(ValidationFailed) as err:
        check_uploads(files, LIMITS)
    assert field in err.value.fields and text in " ".join(err.value.fields[field])


def test_store_keeps_bytes_by_sha256_and_detects_corruption(tmp_path):
    store = LocalStore(tmp_path)
    key = store.put(PDF)
    assert key == sha256_of(PDF) and store.put(PDF) == key and store.get(key) == PDF
    path = tmp_path / key[:2] / key[2:4] / key
    path.write_bytes(b"manipuliert")
    with pytest.raises(StoreError):
        store.get(key)
    with pytest.raises(StoreError):
        store.get("../../etc/passwd")
    with pytest.raises(StoreError):
        store.get(sha256_of(b"nie gespeichert"))
    assert not [p for p in tmp_path.rglob(".tmp-*")]
    assert base64.b64encode(PNG)  # the sample files are real bytes
