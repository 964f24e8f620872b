"""Helpers of the browser tests: log in, save a screenshot."""
from pathlib import Path

from tests.conftest import DEMO

ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = ROOT / "var" / "test-artifacts" / "web"


def log_in(page, web, login=DEMO["login"], password=DEMO["password"]):
    page.goto(web + "/anmeldung")
    page.fill("#f-login", login)
    page.fill("#f-password", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/produkte/webhosting")
    return page


def shot(page, name):
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
