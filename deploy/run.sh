#!/usr/bin/env bash
# Migrate, seed the demo data once, declare the bus topology, start every process.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
# eventlet prints a deprecation banner on import in every process; we know (see docs/architecture.md).
export PYTHONWARNINGS="${PYTHONWARNINGS:-ignore::Warning:nameko.cli.commands,ignore::Warning:kc_common.db}"
export AMQP_URI="${AMQP_URI:-pyamqp://guest:guest@127.0.0.1:5672/}"
export GATEWAY_ADDRESS="${GATEWAY_ADDRESS:-127.0.0.1:8000}"
export WEB_ADDRESS="${WEB_ADDRESS:-127.0.0.1:8080}"
# The PSP sends the customer back to the web front end's "Zahlung vornehmen" page.
export PSP_RETURN_URL="${PSP_RETURN_URL:-http://$WEB_ADDRESS/zahlung}"
# The web front end forwards the customer's address (X-Forwarded-For) for throttling and the IP whitelist.
export TRUSTED_PROXIES="${TRUSTED_PROXIES:-127.0.0.1/32}"
mkdir -p var

for cfg in services/*/config.yaml; do
  python -m kc_common.manage "$cfg" migrate
  python -m kc_common.manage "$cfg" seed
done
python -m kc_common.topology --services deploy/services.txt

url="http://$GATEWAY_ADDRESS"
web="http://$WEB_ADDRESS"
(
  for _ in $(seq 1 90); do
    if curl -fs "$url/health" >/dev/null 2>&1 && curl -fs "$web/health" >/dev/null 2>&1; then
      cat <<BANNER

  KundenCenter (web):  $web   (German customer center in the browser)
  Demo login:          demo@kundencenter.example / Demo-Passwort-2026   (Kundennummer 100001)
  API:                 $url   (health: $url/health, OpenAPI: $url/api/openapi.json)
  Try:                 see README.md, "Walk through the skeleton flow"

BANNER
      exit 0
    fi
    sleep 1
  done
  echo "KundenCenter did not become healthy within 90 s; see the log above." >&2
) &
exec honcho -f deploy/Procfile -d . start
