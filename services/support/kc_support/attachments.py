"""Checking uploaded attachments: count and size limits, type by content, safe names.

Pure functions (no bus, no database): the service calls :func:`check_uploads`
with what the gateway delivered (``data["files"]``) and stores the result.

* The type is detected from the bytes (``filetype``: magic numbers), never from
  the name or the client's Content-Type; only an allow-list is accepted.
  Plain text (logs, configs, CSV) has no magic number: it is accepted when it
  decodes as UTF-8 (or Windows-1252) without control characters.
* The name is sanitised (werkzeug's ``secure_filename``: no paths, ASCII only)
  and its extension must fit the detected type (an ``.exe`` renamed to
  ``.pdf`` is refused twice over: not allowed, and not what it claims).
"""
import base64
import binascii
import os
from dataclasses import dataclass

import filetype
from werkzeug.utils import secure_filename

from kc_common.errors import ValidationFailed
from kc_support.schemas import ATTACHMENT_TYPES

FIELD = "attachments"
MAX_NAME = 120

# detected MIME type -> extensions a file of that type may carry (first = canonical)
ALLOWED = ATTACHMENT_TYPES

KINDS_TEXT = "PDF, Bilder (PNG, JPEG, GIF, WebP, BMP, TIFF), Text (TXT, LOG, CSV …), ZIP, GZIP, TAR, DOCX, XLSX, ODT, ODS"


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int = 10 * 1024 * 1024
    max_total_bytes: int = 25 * 1024 * 1024
    max_files: int = 10


@dataclass(frozen=True)
class Upload:
    filename: str
    content_type: str
    data: bytes

    @property
    def size(self):
        return len(self.data)


def mib(n):
    value = n / (1024 * 1024)
    return f"{value:.0f} MB" if value >= 1 else f"{n} Bytes"


def detect_type(data):
    """The MIME type by content, or None when it is not one we accept."""
    kind = filetype.guess(data)
    if kind is not None:
        return kind.mime if kind.mime in ALLOWED else None
    return "text/plain" if looks_like_text(data) else None


_CONTROL = set(range(0, 32)) - {9, 10, 12, 13}


def looks_like_text(data):
    if b"\x00" in data:
        return False
    for encoding in ("utf-8", "cp1252"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        return not any(ord(c) in _CONTROL for c in text)
    return False


def safe_name(raw, content_type):
    """A sanitised file name whose extension fits ``content_type``, or None when it contradicts it."""
    base = os.path.basename((raw or "").replace("\\", "/"))
    name = secure_filename(base)
    allowed = ALLOWED[content_type]
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    ext = ext.lower()
    if ext and ext not in allowed:
        if stem:  # a real extension that contradicts the content
            return None
        stem, ext = ext, ""  # ".htaccess"-like names: secure_filename already stripped the dot
    stem = stem[:MAX_NAME] or "anhang"
    return f"{stem}.{ext or allowed[0]}"


def check_uploads(files, limits: Limits):
    """Validate the gateway's ``files`` list; returns :class:`Upload` objects or raises.

    All problems are collected and reported together, one field per file
    (``attachments.<index>``) plus ``attachments`` for count and total size.
    """
    files = files or []
    errors = {}
    if not isinstance(files, list):
        raise ValidationFailed(fields={FIELD: ["Ungültige Anhänge."]})
    if len(files) > limits.max_files:
        raise ValidationFailed(fields={FIELD: [f"Höchstens {limits.max_files} Anhänge je Nachricht."]})
    uploads, total = [], 0
    for i, item in enumerate(files):
        key = f"{FIELD}.{i}"
        if not isinstance(item, dict):
            errors[key] = ["Ungültiger Anhang."]
            continue
        label = item.get("filename") or f"Anhang {i + 1}"
        if item.get("field") not in (None, FIELD):
            errors[item["field"]] = [f"Unbekanntes Feld; Dateien bitte als '{FIELD}' senden."]
            continue
        try:
            data = base64.b64decode(item.get("content_b64") or "", validate=True)
        except (binascii.Error, ValueError, TypeError):
            errors[key] = [f"{label}: der Inhalt ist nicht lesbar."]
            continue
        total += len(data)
        if not data:
            errors[key] = [f"{label}: die Datei ist leer."]
            continue
        if len(data) > limits.max_file_bytes:
            errors[key] = [f"{label}: die Datei ist größer als {mib(limits.max_file_bytes)}."]
            continue
        content_type = detect_type(data)
        if content_type is None:
            errors[key] = [f"{label}: dieser Dateityp ist nicht erlaubt. Erlaubt sind {KINDS_TEXT}."]
            continue
        name = safe_name(item.get("filename"), content_type)
        if name is None:
            errors[key] = [f"{label}: die Dateiendung passt nicht zum Inhalt "
                           f"({content_type}). Bitte die Datei mit der richtigen Endung senden."]
            continue
        uploads.append(Upload(name, content_type, data))
    if total > limits.max_total_bytes:
        errors.setdefault(FIELD, []).append(
            f"Alle Anhänge zusammen dürfen höchstens {mib(limits.max_total_bytes)} groß sein.")
    if errors:
        raise ValidationFailed("Die Anhänge sind ungültig.", fields=errors)
    return uploads
