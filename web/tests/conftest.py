"""Tests of the web front end. The browser suite (browser/) runs in its own interpreter, started by
test_browser_suite.py against the real system (tests/conftest.py `system`, which starts every
process of deploy/Procfile including `web`): Playwright stalls under the eventlet monkey patching
of the root conftest.py.
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `pytest web` alone: tests/conftest.py importable as tests.conftest
    sys.path.insert(0, str(ROOT))

# The e2e fixtures, shared with tests/ (not copied): the whole system as real processes.
from tests.conftest import system  # noqa: E402,F401

collect_ignore = ["browser"]  # run by test_browser_suite.py, outside eventlet
