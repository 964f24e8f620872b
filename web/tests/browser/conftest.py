"""Fixtures of the browser suite (its own interpreter, see pytest.ini): Playwright driving Debian's
Chromium against the system the outer test started (tests/conftest.py `system`, described to us in
KC_E2E_SYSTEM). Screenshots of every screen land in var/test-artifacts/web/ (gitignored with var/).
"""
import json
import os
from pathlib import Path

import pytest

# the outer suite's System (not started here: it describes the running one) and its fixtures
from kcweb_pages import ARTIFACTS, log_in

from tests.conftest import System, make_customer, staff_headers  # noqa: F401

CHROMIUM = os.environ.get("KC_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def system():
    described = json.loads(Path(os.environ["KC_E2E_SYSTEM"]).read_text())
    running = System(described["url"], described["env"], Path(described["logs"]))
    running.web_url = described["web_url"]
    return running


@pytest.fixture(scope="session")
def web(system):
    return system.web_url


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} missing (deploy/ensure-tools.sh installs Debian's chromium)")
    from playwright.sync_api import sync_playwright
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser):
    """``new_page(width=1366)`` -> a page in a fresh browser context (own cookies)."""
    contexts = []

    def make(width=1366, height=900):
        context = browser.new_context(viewport={"width": width, "height": height}, locale="de-DE",
                                      accept_downloads=True)
        context.set_default_timeout(15000)
        contexts.append(context)
        page = context.new_page()
        page.console_errors = []
        page.on("console", lambda m: page.console_errors.append(m.text) if m.type == "error" else None)
        return page

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def demo_page(new_page, web):
    return log_in(new_page(), web)
