"""dns's RPC contract (also the OpenAPI document's schemas)."""
from marshmallow import fields, validate

from kc_common.schemas import BaseSchema, Boolean, PageQuerySchema, page_of


class RecordSchema(BaseSchema):
    id = fields.Integer(required=True)
    name = fields.String(required=True, metadata={"description": "relativ zur Zone, @ = Zone selbst"})
    type = fields.String(required=True)
    ttl = fields.Integer(required=True)
    content = fields.String(required=True, metadata={
        "description": "Inhalt in der Form der Zonendatei, Namen absolut (mit Punkt am Ende)"})
    managed = Boolean(metadata={"description": "vom System verwaltet (SOA, NS der Zone)"})


class ZoneSchema(BaseSchema):
    name = fields.String(required=True, metadata={"description": "A-Label, ohne Punkt am Ende"})
    name_unicode = fields.String(metadata={"description": "der Name, wie ihn Menschen lesen (IDN)"})
    serial = fields.Integer(required=True, metadata={"description": "SOA-Serial YYYYMMDDnn"})
    version = fields.Integer(required=True, metadata={
        "description": "Version der Zone; als If-Match bei Änderungen mitsenden"})
    etag = fields.String(metadata={"description": "die Version als ETag (\"7\")"})
    records = fields.List(fields.Nested(RecordSchema), required=True)


class ZoneSummarySchema(BaseSchema):
    name = fields.String(required=True)
    name_unicode = fields.String(required=True)
    serial = fields.Integer(required=True)
    version = fields.Integer(required=True)
    record_count = fields.Integer(required=True)


ZoneQuerySchema = PageQuerySchema
ZonePageSchema = page_of(ZoneSummarySchema, "ZonePageSchema")


class ChangeSchema(BaseSchema):
    action = fields.String(required=True, validate=validate.OneOf(["add", "replace", "delete"]),
                           metadata={"description": "add: Einträge zum Satz hinzufügen; replace: den "
                                                    "Satz (Name+Typ) ersetzen; delete: den Satz oder "
                                                    "die genannten Einträge löschen"})
    name = fields.String(required=True, validate=validate.Length(max=300),
                         metadata={"description": "relativ (www), @ für die Zone selbst, oder absolut "
                                                  "mit Punkt am Ende; IDN erlaubt"})
    type = fields.String(required=True, validate=validate.Length(max=10),
                         metadata={"description": "A, AAAA, CAA, CNAME, DNAME, MX, NS, SRV, TXT"})
    ttl = fields.Integer(load_default=None, allow_none=True,
                         metadata={"description": "Sekunden; fehlt sie, gilt die des Satzes oder "
                                                  "die Voreinstellung"})
    records = fields.List(fields.String(validate=validate.Length(max=5000)), load_default=None,
                          allow_none=True, validate=validate.Length(max=100), metadata={
                              "description": "Inhalte, z. B. \"192.0.2.1\", \"10 mail\", "
                                             "\"0 issue \\\"letsencrypt.org\\\"\"; TXT als "
                                             "einfacher Text oder in Anführungszeichen"})


class ChangeSetSchema(BaseSchema):
    changes = fields.List(fields.Nested(ChangeSchema), required=True,
                          validate=validate.Length(min=1, max=1000))


class ProblemSchema(BaseSchema):
    field = fields.String(required=True)
    message = fields.String(required=True)


class RecordSetKeySchema(BaseSchema):
    name = fields.String(required=True)
    type = fields.String(required=True)


class ChangeResultSchema(BaseSchema):
    """The applied change: new version/serial and the record sets it wrote (not the whole zone)."""
    name = fields.String(required=True)
    name_unicode = fields.String(required=True)
    serial = fields.Integer(required=True)
    version = fields.Integer(required=True)
    etag = fields.String(required=True)
    records = fields.List(fields.Nested(RecordSchema), required=True, metadata={
        "description": "die Einträge der geänderten Sätze nach der Änderung"})
    deleted = fields.List(fields.Nested(RecordSetKeySchema), required=True, metadata={
        "description": "gelöschte Sätze (Name, Typ)"})
    warnings = fields.List(fields.Nested(ProblemSchema), required=True,
                           metadata={"description": "Hinweise, die die Änderung nicht verhindert haben"})


class ImportSchema(BaseSchema):
    zone_file = fields.String(required=True, validate=validate.Length(min=1, max=5_000_000),
                              metadata={"description": "Zonendatei nach RFC 1035"})
    replace_all = Boolean(load_default=False, metadata={
        "description": "auch Eintragssätze löschen, die in der Datei fehlen"})
    dry_run = Boolean(load_default=False, metadata={
        "description": "nur prüfen und berichten, nichts speichern"})


class ImportLineSchema(BaseSchema):
    line = fields.Integer(required=True)
    text = fields.String(required=True)
    message = fields.String(required=True)


class ImportWarningSchema(BaseSchema):
    field = fields.String(required=True, metadata={"description": "\"line N\""})
    line = fields.Integer(required=True, metadata={"description": "die Zeile, die den Hinweis auslöst"})
    message = fields.String(required=True)


class ImportResultSchema(BaseSchema):
    applied = Boolean(required=True)
    dry_run = Boolean(required=True)
    accepted = fields.Integer(required=True, metadata={"description": "übernommene Einträge"})
    deleted_sets = fields.Integer(required=True)
    rejected = fields.List(fields.Nested(ImportLineSchema), required=True)
    ignored = fields.List(fields.Nested(ImportLineSchema), required=True)
    warnings = fields.List(fields.Nested(ImportWarningSchema), required=True)
    version = fields.Integer(required=True)
    serial = fields.Integer(required=True)
    etag = fields.String(required=True)
