"""Fail-fast settings: a service declares what config it needs; it refuses to start otherwise."""
from marshmallow import Schema, ValidationError, EXCLUDE
from nameko.extensions import DependencyProvider


class SettingsError(RuntimeError):
    pass


class Settings(DependencyProvider):
    """Validates ``container.config`` against a schema at start-up.

    The worker gets the loaded, typed settings dict.
    """

    def __init__(self, schema_cls):
        self.schema_cls = schema_cls
        self.values = None

    def setup(self):
        self.values = validate_settings(self.schema_cls, self.container.config)

    def get_dependency(self, worker_ctx):
        return self.values


def validate_settings(schema_cls, config):
    schema: Schema = schema_cls(unknown=EXCLUDE)
    try:
        return schema.load(dict(config))
    except ValidationError as exc:
        problems = "; ".join(f"{k}: {', '.join(map(str, v)) if isinstance(v, list) else v}"
                             for k, v in exc.messages.items())
        raise SettingsError(f"invalid configuration: {problems}") from None
