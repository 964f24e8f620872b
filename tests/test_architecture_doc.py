"""docs/architecture.md's RPC and event tables are the code's (deploy/architecture_tables.py)."""
from tests.conftest import ROOT, _deploy_module

tables = _deploy_module("architecture_tables")


def test_the_rpc_and_event_tables_are_generated_from_the_code():
    doc = (ROOT / "docs" / "architecture.md").read_text()
    assert tables.render_into(doc) == doc, \
        "docs/architecture.md's RPC/event tables are out of date: python deploy/architecture_tables.py --write"


def test_the_tables_see_what_the_code_does():
    services, consumers = tables.model()
    # RPCs by their callers: a staff route, another service, nothing at all
    assert services["billing"]["reached"]["refund_credit"] == {"gateway (staff)"}
    assert services["billing"]["reached"]["account_standing"] == {"catalog"}
    assert services["billing"]["reached"]["run_dunning"] == set()
    # events: what is emitted (literals, constants, kc_common helpers) and who handles it
    assert "refund_booked" in services["billing"]["publishes"]
    assert "support_request_closed" in services["support"]["publishes"]
    assert {"data_export_part"} <= services["dns"]["publishes"]
    assert ("catalog", "contract_activated") not in consumers
    assert "gateway.session_ended" in consumers[("identity", "session_ended")]
    # a stale doc is told apart
    doc = (ROOT / "docs" / "architecture.md").read_text()
    stale = doc.replace("`refund_credit`, ", "", 1)
    assert stale != doc and tables.render_into(stale) == doc
