"""Server time and API calls per page of the web front end (not a test).

    .venv/bin/python web/bench/bench_pages.py --web http://127.0.0.1:8080 [--runs 50]

Logs in as the demo customer, loads every page ``--runs`` times (after a warm-up) and
prints p50/p99 of the server time the web process reports (``Server-Timing: app``: from
the request's arrival to the response, API calls included) and of the time the client
saw, plus the number of gateway API calls the page made. Target: p50 <= 100 ms and at
most 3 API calls per page.
"""
import argparse
import re
import statistics
import sys
import time

import requests

PAGES = [
    "/produkte/webhosting", "/produkte/server", "/produkte/server/traffic", "/produkte/andere",
    "/bestellen", "/bestellen/domain-de", "/dns/{zone}", "/konto", "/zahlung", "/daten/adresse",
    "/daten/passwoerter", "/daten/zahlungsdetails", "/daten/ansprechpartner", "/daten/mitteilungen",
    "/daten/datenschutz", "/daten/ip-whitelist", "/daten/sicherheit", "/dokumente", "/support",
    "/vertraege/{contract}/tarifwechsel", "/vertraege/{contract}/kuendigung", "/anmeldung?_=public",
]
# The previews before confirming (POST, nothing is booked): the order's quote and the
# Tarifwechsel's proration, both priced by the API.
PREVIEWS = [
    ("/bestellen/domain-de (Angebot)", "/bestellen/domain-de",
     {"step": "pruefen", "domain": "bench-angebot.de", "period_months": "12"}),
    ("/vertraege/{contract}/tarifwechsel (anteilig)", "/vertraege/{contract}/tarifwechsel",
     {"step": "pruefen", "product_id": "{tariff}"}),
]
TIMING = re.compile(r'app;dur=([\d.]+).*?desc="(\d+) calls"')


def percentile(values, p):
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def login(session, web, user, password):
    page = session.get(web + "/anmeldung").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    resp = session.post(web + "/anmeldung", data={"login": user, "password": password, "csrf_token": token},
                        allow_redirects=False)
    if resp.status_code != 302:
        sys.exit(f"login failed: {resp.status_code}")


def measure(runs, load):
    """(server ms list, client ms list, call counts) of ``runs`` loads after 3 warm-ups."""
    server, seen, calls = [], [], set()
    for i in range(runs + 3):
        started = time.perf_counter()
        resp = load()
        elapsed = (time.perf_counter() - started) * 1000
        if resp.status_code != 200:
            sys.exit(f"{resp.url}: HTTP {resp.status_code}")
        match = TIMING.search(resp.headers.get("Server-Timing", ""))
        if i < 3:  # warm-up
            continue
        server.append(float(match.group(1)))
        seen.append(elapsed)
        calls.add(int(match.group(2)))
    return server, seen, calls


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--web", default="http://127.0.0.1:8080")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--login", default="demo@kundencenter.example")
    parser.add_argument("--password", default="Hafen-Leuchtturm-2026")
    parser.add_argument("--zone", default="profihost-demo.de")
    parser.add_argument("--contract", default="1")
    args = parser.parse_args(argv)
    session = requests.Session()
    login(session, args.web, args.login, args.password)
    print(f"{'page':40} {'p50 ms':>8} {'p99 ms':>8} {'client p50':>11} {'API calls':>10}")
    worst = 0.0
    for template in PAGES:
        path = template.format(zone=args.zone, contract=args.contract)
        public = path.startswith("/anmeldung")
        client = requests.Session() if public else session
        server, seen, calls = measure(args.runs, lambda client=client, path=path: client.get(args.web + path, allow_redirects=False))
        p50 = statistics.median(server)
        worst = max(worst, p50)
        print(f"{path:40} {p50:8.1f} {percentile(server, 99):8.1f} {statistics.median(seen):11.1f} "
              f"{'/'.join(map(str, sorted(calls))):>10}")
    page = session.get(f"{args.web}/vertraege/{args.contract}/tarifwechsel").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    tariff = re.search(r'name="product_id" value="([^"]+)"(?![^>]*disabled)', page).group(1)
    for name, template, form in PREVIEWS:
        path = template.format(contract=args.contract)
        data = {k: v.format(tariff=tariff) for k, v in form.items()} | {"csrf_token": token}
        server, seen, calls = measure(args.runs, lambda path=path, data=data: session.post(args.web + path, data=data,
                                                                      allow_redirects=False))
        p50 = statistics.median(server)
        worst = max(worst, p50)
        print(f"{name.format(contract=args.contract):40} {p50:8.1f} {percentile(server, 99):8.1f} "
              f"{statistics.median(seen):11.1f} {'/'.join(map(str, sorted(calls))):>10}")
    print(f"\nworst p50: {worst:.1f} ms over {args.runs} loads per page")


if __name__ == "__main__":
    main()
