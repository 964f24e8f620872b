"""Runs the browser suite (web/tests/browser) in a clean interpreter against the real system."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]


def wait_for_web(system, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(system.web_url + "/health", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise AssertionError("web did not answer:\n" + system.log("web")[-3000:])


def test_browser_suite(system, tmp_path):
    wait_for_web(system)
    described = tmp_path / "system.json"
    described.write_text(json.dumps({"url": system.url, "web_url": system.web_url, "env": system.env,
                                     "logs": str(system.logs)}))
    env = dict(os.environ, KC_E2E_SYSTEM=str(described), PYTHONPATH=str(ROOT))
    args = [sys.executable, "-m", "pytest", "-c", str(ROOT / "web/tests/browser/pytest.ini"),
            "--rootdir", str(ROOT / "web/tests/browser"), str(ROOT / "web/tests/browser"), "-v",
            *os.environ.get("KC_WEB_BROWSER_ARGS", "").split()]
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)
    print(result.stdout[-20000:])
    assert result.returncode == 0, result.stdout[-15000:] + result.stderr[-3000:]
