"""kc_common.settings: secrets refused outside development, typed values, fail fast."""
import pytest
from marshmallow import Schema, fields

from kc_common.settings import (
    COMMON_SECRETS,
    Secret,
    SettingsError,
    check_secrets,
    environment,
    load_settings,
)

DEV = "whsec_dev_only_change_me"
SECRETS = (Secret("WEBHOOK_SECRET", "PSP_WEBHOOK_SECRET", dev=(DEV,), many=True),
           Secret("INBOUND", "SUPPORT_INBOUND_SECRET", optional=True))
PROD = {"KC_ENV": "production"}


def test_unset_kc_env_counts_as_production():
    assert environment({}) == "production"
    assert environment({"KC_ENV": " "}) == "production"
    assert environment({"KC_ENV": "development"}) == "development"


def test_development_accepts_the_committed_values_and_missing_secrets():
    check_secrets({"WEBHOOK_SECRET": DEV}, SECRETS, {"KC_ENV": "development"})
    check_secrets({}, SECRETS, {"KC_ENV": "development"})


@pytest.mark.parametrize("env", [PROD, {}, {"KC_ENV": "staging"}])
def test_a_committed_development_value_is_refused_naming_the_variable(env):
    with pytest.raises(SettingsError, match="PSP_WEBHOOK_SECRET is a development value committed"):
        check_secrets({"WEBHOOK_SECRET": DEV}, SECRETS, env)


def test_a_development_value_among_several_rotation_secrets_is_refused():
    with pytest.raises(SettingsError, match="PSP_WEBHOOK_SECRET"):
        check_secrets({"WEBHOOK_SECRET": f"whsec_new_one, {DEV}"}, SECRETS, PROD)


def test_a_missing_secret_is_refused_an_optional_one_is_not():
    for missing in ({}, {"WEBHOOK_SECRET": ""}, {"WEBHOOK_SECRET": " , "}):
        with pytest.raises(SettingsError, match="PSP_WEBHOOK_SECRET is not set") as err:
            check_secrets(missing, SECRETS, PROD)
        assert "SUPPORT_INBOUND_SECRET" not in str(err.value)
    check_secrets({"WEBHOOK_SECRET": "whsec_our_own"}, SECRETS, PROD)


def test_the_manifests_placeholder_is_refused():
    with pytest.raises(SettingsError, match="AMQP_URI is still the placeholder CHANGE_ME"):
        check_secrets({"AMQP_URI": "amqp://kundencenter:CHANGE_ME@kc-rabbitmq:5672/kundencenter"},
                      COMMON_SECRETS, PROD)
    with pytest.raises(SettingsError, match="SUPPORT_INBOUND_SECRET is still the placeholder"):
        check_secrets({"WEBHOOK_SECRET": "whsec_our_own", "INBOUND": "CHANGE_ME"}, SECRETS, PROD)


def test_every_problem_is_named_at_once():
    config = {"AMQP_URI": "pyamqp://guest:guest@127.0.0.1:5672/", "WEBHOOK_SECRET": DEV}
    with pytest.raises(SettingsError) as err:
        check_secrets(config, COMMON_SECRETS + SECRETS, PROD)
    assert "AMQP_URI" in str(err.value) and "PSP_WEBHOOK_SECRET" in str(err.value)
    assert "KC_ENV=production" in str(err.value)


class _Typed(Schema):
    TIMEOUT = fields.Integer(load_default=5)


def test_load_settings_types_values_and_fails_fast():
    assert load_settings({"TIMEOUT": "7"}, _Typed, SECRETS, {"KC_ENV": "development"}) == {"TIMEOUT": 7}
    with pytest.raises(SettingsError, match="TIMEOUT"):
        load_settings({"TIMEOUT": "sieben"}, _Typed, (), PROD)
