"""Fail-fast settings: one mechanism for every service and the gateway.

A service declares what config it needs (``Settings(schema_cls, secrets=...)``): a marshmallow
schema types and validates its values, ``Secret`` declarations name the secrets it holds. Both
are checked once, at start; the service refuses to start otherwise, naming the variable.

The values come from the service's nameko ``config.yaml`` (``KEY: ${VARIABLE:default}``); the
README's settings table is generated from those files (``python -m kc_common.settings_table``).

Secrets: ``KC_ENV=development`` (what ``make run`` and the tests set) runs with the development
values committed to the repository. In any other environment (``KC_ENV`` unset counts as
production) a service refuses to start when a secret is missing or equals a committed
development value.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError
from nameko.extensions import DependencyProvider

DEVELOPMENT = "development"
# The placeholder of deploy/k8s/secrets (and anywhere else): never a secret, in any environment
# but development.
PLACEHOLDER = "CHANGE_ME"


class SettingsError(RuntimeError):
    pass


def environment(env: Mapping[str, str] | None = None) -> str:
    """``KC_ENV``; unset or empty counts as ``production`` (secrets are then required)."""
    env = os.environ if env is None else env
    return (env.get("KC_ENV") or "").strip() or "production"


def is_development(env: Mapping[str, str] | None = None) -> bool:
    return environment(env) == DEVELOPMENT


@dataclass(frozen=True)
class Secret:
    """A secret setting: ``key`` in the config, set by the environment variable ``env``."""

    key: str
    env: str
    dev: tuple = ()          # the development values committed to the repository
    optional: bool = False   # empty allowed (the feature it protects is then off)
    many: bool = False       # comma-separated list (key rotation): every item is checked

    def values(self, config: Mapping[str, Any]) -> list[str]:
        raw = config.get(self.key)
        if raw in (None, ""):
            return []
        if self.many:
            return [v.strip() for v in str(raw).split(",") if v.strip()]
        return [str(raw)]


# Every service and the gateway: the broker URI's committed default (guest on localhost) and
# the SMTP password (empty: no SMTP authentication).
COMMON_SECRETS = (
    Secret("AMQP_URI", "AMQP_URI", dev=("pyamqp://guest:guest@127.0.0.1:5672/",)),
    Secret("SMTP_PASSWORD", "SMTP_PASSWORD", optional=True),
)


def check_secrets(config: Mapping[str, Any], secrets: Sequence[Secret],
                  env: Mapping[str, str] | None = None) -> None:
    """Outside development: refuse missing secrets and committed development values."""
    if is_development(env):
        return
    problems = []
    for secret in secrets:
        values = secret.values(config)
        if not values:
            if not secret.optional:
                problems.append(f"{secret.env} is not set")
        elif any(v in secret.dev for v in values):
            problems.append(f"{secret.env} is a development value committed to the repository")
        elif any(PLACEHOLDER in v for v in values):
            problems.append(f"{secret.env} is still the placeholder {PLACEHOLDER}")
    if problems:
        raise SettingsError(f"refusing to start with KC_ENV={environment(env)}: {'; '.join(problems)}"
                            " (set your own secret; KC_ENV=development only for development)")


class Settings(DependencyProvider):
    """Validates ``container.config`` against a schema at start-up and checks the secrets.

    The worker gets the config as a dict with the schema's settings typed (and defaulted);
    keys the schema does not declare are passed on as they are.
    """

    def __init__(self, schema_cls: type[Schema] | None = None, secrets: Sequence[Secret] = ()) -> None:
        self.schema_cls = schema_cls
        self.secrets = tuple(COMMON_SECRETS) + tuple(secrets)
        self.values: dict[str, Any] | None = None

    def bind(self, container: Any, attr_name: str) -> Any:
        # The secrets first, when the container is made: before any other extension's setup
        # (a database, the broker) can fail for another reason.
        check_secrets(container.config, self.secrets)
        return super().bind(container, attr_name)

    def setup(self) -> None:
        config = self.container.config
        self.values = {**config, **load_settings(config, self.schema_cls, self.secrets)}

    def get_dependency(self, worker_ctx: Any) -> Any:
        return self.values


class Configured(Settings):
    """Settings plus what a service builds from them once at start (a payment provider, a
    document storage, the letterhead): ``build(values)`` runs in ``setup`` with the checked
    settings, and every worker gets its result (one object, shared by the workers).
    """

    def __init__(self, build: Callable[[Any], Any], schema_cls: type[Schema] | None = None,
                 secrets: Sequence[Secret] = ()) -> None:
        super().__init__(schema_cls, secrets)
        self.build = build
        self.built: Any = None

    def setup(self) -> None:
        super().setup()
        self.built = self.build(self.values)

    def get_dependency(self, worker_ctx: Any) -> Any:
        return self.built


def load_settings(config: Mapping[str, Any], schema_cls: type[Schema] | None = None,
                  secrets: Sequence[Secret] = (), env: Mapping[str, str] | None = None) -> Any:
    """The typed settings of ``config``; raises SettingsError naming what is wrong."""
    check_secrets(config, secrets, env)
    if schema_cls is None:
        return dict(config)
    return validate_settings(schema_cls, config)


def validate_settings(schema_cls: type[Schema], config: Mapping[str, Any]) -> Any:
    schema: Schema = schema_cls(unknown=EXCLUDE)
    try:
        return schema.load(dict(config))
    except ValidationError as exc:
        problems = "; ".join(f"{k}: {', '.join(map(str, v)) if isinstance(v, list) else v}"
                             for k, v in exc.messages.items())  # type: ignore[union-attr]  # a schema's: a dict
        raise SettingsError(f"invalid configuration: {problems}") from None
