"""Settings and secrets: outside KC_ENV=development every program refuses committed development
secrets and missing ones, naming the variable; the README's table is the code's."""
import importlib
import os
import re
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet
from nameko.containers import ServiceContainer

from kc_common.manage import load_config
from kc_common.settings import SettingsError
from tests.conftest import ROOT, _deploy_module

settings_table = _deploy_module("settings_table")

SERVICES = {  # program: (config, service class, the secrets it must name with nothing set)
    "identity": ("services/identity/config.yaml", "kc_identity.service:IdentityService",
                 ["AMQP_URI", "PHONE_PASSWORD_KEYS"]),
    "catalog": ("services/catalog/config.yaml", "kc_catalog.service:CatalogService",
                ["AMQP_URI", "CATALOG_LOGIN_LINK_SECRET"]),
    "billing": ("services/billing/config.yaml", "kc_billing.service:BillingService",
                ["AMQP_URI", "PSP_WEBHOOK_SECRET", "PSP_API_KEY"]),
    "dns": ("services/dns/config.yaml", "kc_dns.service:DnsService", ["AMQP_URI"]),
    "documents": ("services/documents/config.yaml", "kc_documents.service:DocumentsService", ["AMQP_URI"]),
    "support": ("services/support/config.yaml", "kc_support.service:SupportService", ["AMQP_URI"]),
    "gateway": ("gateway/config.yaml", "kc_gateway.service:GatewayService", ["AMQP_URI"]),
}
OWN = {"AMQP_URI": "pyamqp://kc:s3cret@rabbit-0.example:5672/kc",
       "PHONE_PASSWORD_KEYS": Fernet.generate_key().decode(),
       "CATALOG_LOGIN_LINK_SECRET": "our-own-login-link-secret-of-40-characters",
       "PSP_WEBHOOK_SECRET": "whsec_our_own", "PSP_API_KEY": "live_key_our_own"}
ALL_SECRETS = sorted({v for *_, names in SERVICES.values() for v in names} | {"SMTP_PASSWORD",
                                                                               "SUPPORT_INBOUND_SECRET"})


def _service_class(path):
    module, cls = path.split(":")
    return getattr(importlib.import_module(module), cls)


def _container(program, monkeypatch, **env):
    for name in ALL_SECRETS:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config, cls, _ = SERVICES[program]
    return ServiceContainer(_service_class(cls), load_config(str(ROOT / config)))


@pytest.mark.parametrize("program", sorted(SERVICES))
def test_outside_development_committed_secrets_are_refused_naming_the_variable(program, monkeypatch):
    with pytest.raises(SettingsError) as err:
        _container(program, monkeypatch, KC_ENV="production")
    message = str(err.value)
    assert "KC_ENV=production" in message
    named = re.findall(r"([A-Z_]+) is (?:a development value|not set)", message)
    assert sorted(named) == sorted(SERVICES[program][2])


@pytest.mark.parametrize("program", sorted(SERVICES))
def test_with_own_secrets_or_in_development_the_services_start(program, monkeypatch):
    assert _container(program, monkeypatch, KC_ENV="production", **OWN)
    assert _container(program, monkeypatch, KC_ENV="development")


def test_a_missing_secret_is_refused(monkeypatch):
    with pytest.raises(SettingsError, match=r"PSP_WEBHOOK_SECRET is not set") as err:
        _container("billing", monkeypatch, KC_ENV="staging", **dict(OWN, PSP_WEBHOOK_SECRET=""))
    assert "PSP_API_KEY" not in str(err.value)
    with pytest.raises(SettingsError, match=r"PHONE_PASSWORD_KEYS is a development value"):
        # a rotation list that still holds the committed development key
        _container("identity", monkeypatch, KC_ENV="production", **dict(
            OWN, PHONE_PASSWORD_KEYS=OWN["PHONE_PASSWORD_KEYS"] + ",G3_fDDK1k_WL0NGt7JxiSqEDVbqD22_--l1iuBTJSVg="))


def _production_env():
    env = {k: v for k, v in os.environ.items() if k not in ALL_SECRETS and k != "WEB_SECRET_KEY"}
    return dict(env, KC_ENV="production", PATH=f"{os.path.dirname(sys.executable)}:{env.get('PATH', '')}")


@pytest.mark.slow  # a `nameko run` process
def test_nameko_run_refuses_to_start_a_service_with_the_development_webhook_secret():
    proc = subprocess.run(["nameko", "run", "--config", "services/billing/config.yaml",
                           "kc_billing.service:BillingService"], cwd=ROOT, env=_production_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "PSP_WEBHOOK_SECRET is a development value committed to the repository" in proc.stderr


@pytest.mark.slow  # a web front end process
def test_the_web_front_end_refuses_to_start_without_its_session_secret():
    proc = subprocess.run([sys.executable, "-m", "kc_web", "--address", "127.0.0.1:1"], cwd=ROOT,
                          env=_production_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "WEB_SECRET_KEY fehlt" in proc.stderr


def test_declared_development_values_are_the_committed_ones():
    """Every secret's committed default in config.yaml is a declared development value, and
    every setting that looks like a secret is declared as one."""
    declared = settings_table.secrets()
    for program, (config, _module) in settings_table.PROGRAMS.items():
        for variable, default, _meaning in settings_table.config_settings(ROOT / config):
            if re.search(r"(SECRET|_KEYS?|PASSWORD)$", variable) or variable == "AMQP_URI":
                assert variable in declared, f"{program}: {variable} looks like a secret: declare it"
            if variable in declared and default:
                assert default in declared[variable].dev, f"{program}: {variable}'s default is not declared"


def test_the_readme_settings_table_is_generated_from_the_code():
    readme = (ROOT / "README.md").read_text()
    assert settings_table.replace_in(readme, settings_table.render()) == readme, \
        "README.md's settings table is out of date: python deploy/settings_table.py --write"
    for variable, row in settings_table.rows().items():
        assert row["meaning"], f"{variable} has no meaning: a comment above it in config.yaml"


@pytest.mark.parametrize("program, variable, key, value", [
    ("identity", "SESSION_IDLE_MINUTES", "SESSION_IDLE_MINUTES", "sechzig"),
    ("gateway", "HEALTH_TIMEOUT", "HEALTH_TIMEOUT", "0"),
    ("catalog", "CATALOG_LOGIN_LINK_TTL", "LOGIN_LINK_TTL", "5"),
    ("support", "SUPPORT_ATTACHMENT_MAX_FILES", "ATTACHMENT_MAX_FILES", "0")])
def test_a_bad_value_stops_the_start_naming_the_setting(program, variable, key, value, monkeypatch):
    from kc_common.settings import Settings
    container = _container(program, monkeypatch, KC_ENV="development", **{variable: value})
    provider = next(d for d in container.dependencies if isinstance(d, Settings))
    with pytest.raises(SettingsError, match=f"invalid configuration: {key}: "):
        provider.setup()
