"""The API against its own OpenAPI document: schemathesis over every operation.

A system of its own (the fuzzer changes the demo customer's data, products and
billing runs), the demo customer's token for the customer and public operations
and a staff admin's for the back office. Fails on any 5xx, any response that does
not match its documented schema (status, content type, headers, body), any
documented-valid request that is refused with 400/415 (a refusal of data the schema
cannot judge is 422), and any invalid one that is accepted. Bounded: a fixed number
of examples per operation, a time budget per run (tests/schemathesis.toml has the
accepted statuses).
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kc_gateway.http import _slug
from tests.conftest import DEMO, System, login, running_system, staff_login

pytestmark = pytest.mark.infrastructure  # its system comes through request.getfixturevalue

HERE = Path(__file__).resolve().parent
# Operations that would end the fuzzer's own login (logout, ending sessions, the IP
# whitelist locking 127.0.0.1 out); they have their own end-to-end tests.
EXCLUDE = [
    ("DELETE", "/api/v1/session"),
    ("DELETE", "/api/v1/staff/session"),
    ("DELETE", "/api/v1/me/sessions/<session_id>"),
    ("PUT", "/api/v1/me/ip-whitelist"),
    ("PUT", "/api/v1/me/password"),
]
MAX_EXAMPLES = int(os.environ.get("KC_FUZZ_EXAMPLES", "12"))
MAX_TIME = int(os.environ.get("KC_FUZZ_SECONDS", "45"))  # per realm


@pytest.fixture(scope="module")
def fuzzed_system(request):
    # the embedded default (SQLite, as `make run`): the fuzzer's system holds no PostgreSQL
    # connections while the rest of the suite needs them
    # a loaded machine must not turn a slow answer (argon2 on every login) into a 503
    with running_system(System, request, database="sqlite", RPC_TIMEOUT="20") as system:
        yield system


def schemathesis(system, tmp_path, realm, headers, *filters):
    """Run the schemathesis CLI; (exit code, the end of its output). The whole output and an
    NDJSON report stay in KC_FUZZ_REPORT_DIR (default: the test's tmp_path)."""
    report = Path(os.environ.get("KC_FUZZ_REPORT_DIR") or tmp_path) / realm
    report.mkdir(parents=True, exist_ok=True)
    argv = [str(Path(sys.executable).parent / "schemathesis"),
            "--config-file", str(HERE / "schemathesis.toml"), "--no-color",
            "run", system.url + "/api/openapi.json",
            "--checks", "all",
            "--exclude-checks", "ignored_auth,use_after_free,ensure_resource_availability",
            "--phases", "examples,coverage,fuzzing,stateful",
            "--max-examples", str(MAX_EXAMPLES), "--max-time", str(MAX_TIME),
            "--workers", "2", "--request-timeout", "15", "--seed", "15",
            "--suppress-health-check", "all", "--no-shrink",
            "--report", "ndjson", "--report-dir", str(report),
            "--output-truncate", "false"]
    for name, value in headers.items():
        argv += ["--header", f"{name}: {value}"]
    for method, path in EXCLUDE:
        argv += ["--exclude-operation-id", _slug(f"{method} {path}")]
    argv += list(filters)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=MAX_TIME * 4 + 120,
                          cwd=report)  # its cache (.schemathesis/) stays there
    output = proc.stdout + proc.stderr
    (report / "output.txt").write_text(output)
    failures = output[output.find("=== FAILURES"):] if "=== FAILURES" in output else output
    return proc.returncode, failures[:12000] + "\n…\n" + output[-3000:]


def test_customer_and_public_operations_keep_the_contract(fuzzed_system, tmp_path):
    code, output = schemathesis(fuzzed_system, tmp_path, "customer", login(fuzzed_system, DEMO),
                                "--exclude-path-regex", "^/api/v1/staff/")
    assert code == 0, output


def test_staff_operations_keep_the_contract(fuzzed_system, tmp_path):
    code, output = schemathesis(fuzzed_system, tmp_path, "staff", staff_login(fuzzed_system, "admin"),
                                "--include-path-regex", "^/api/v1/staff/")
    assert code == 0, output
