"""identity on the real bus: login and authenticate."""
import pytest
from nameko.testing.services import entrypoint_hook

from kc_common.db import StandaloneDatabase
from kc_common.errors import Unauthenticated
from kc_identity import demo
from kc_identity.models import metadata
from kc_identity.service import IdentityService


@pytest.fixture
def identity(container_factory, config):
    db = StandaloneDatabase(metadata, config["DATABASE_URL"], "identity")
    demo.seed(db, config)
    db.engine.dispose()
    container = container_factory(IdentityService, config)
    container.start()
    return container


def test_login_then_authenticate(identity):
    with entrypoint_hook(identity, "login", context_data={"client_ip": "192.0.2.1"}) as login:
        session = login({"login": demo.DEMO_EMAIL.upper(), "password": demo.DEMO_PASSWORD})
    assert session["customer_id"] == 100001 and session["token"].startswith("kcc_")
    with entrypoint_hook(identity, "authenticate") as authenticate:
        principal = authenticate(session["token"])
    assert principal["kind"] == "customer" and principal["customer_id"] == 100001


def test_wrong_password_and_unknown_login_get_the_same_answer(identity):
    answers = []
    with entrypoint_hook(identity, "login") as login:
        for creds in ({"login": "100001", "password": "falsch"},
                      {"login": "nobody@example.org", "password": "falsch"}):
            with pytest.raises(Unauthenticated) as err:
                login(creds)
            answers.append(err.value.to_body())
    assert answers[0] == answers[1]


def test_logout_ends_the_session(identity):
    with entrypoint_hook(identity, "login") as login:
        session = login({"login": "100001", "password": demo.DEMO_PASSWORD})
    with entrypoint_hook(identity, "authenticate") as authenticate:
        principal = authenticate(session["token"])
    with entrypoint_hook(identity, "logout", context_data={
            "customer_id": 100001, "session_id": principal["session_id"]}) as logout:
        logout()
    with entrypoint_hook(identity, "authenticate") as authenticate:
        with pytest.raises(Unauthenticated):
            authenticate(session["token"])


def test_check_contact_knows_the_customer_by_name(identity):
    with entrypoint_hook(identity, "check_contact") as check_contact:
        assert check_contact(100001, "max  MUSTERMANN", "support")["authorised"] is True
        assert check_contact(100001, "Mustermann, Max", "support")["authorised"] is True
        assert check_contact(100001, "Eve Intruder", "support")["authorised"] is False
        assert check_contact(999999, "Max Mustermann", "support")["authorised"] is False
