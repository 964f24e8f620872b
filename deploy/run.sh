#!/usr/bin/env bash
# Migrate, seed the demo data once, declare the bus topology, then run every
# program of deploy/Procfile under supervisord (in the foreground): a program
# that exits is restarted, the others keep running; Ctrl-C stops them all.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
# eventlet prints a deprecation banner on import in every process (and in documents' render
# workers); we know (see docs/architecture.md).
export PYTHONWARNINGS="${PYTHONWARNINGS:-ignore::Warning:nameko.cli.commands,ignore::Warning:nameko.extensions,ignore::Warning:nameko.messaging,ignore::Warning:kc_common.db}"
# Development: the services run with the development secrets committed to the repository (any
# other KC_ENV refuses them; see README "Settings").
export KC_ENV="${KC_ENV:-development}"
export AMQP_URI="${AMQP_URI:-pyamqp://guest:guest@127.0.0.1:5672/}"
export GATEWAY_ADDRESS="${GATEWAY_ADDRESS:-127.0.0.1:8000}"
export WEB_ADDRESS="${WEB_ADDRESS:-127.0.0.1:8080}"
# The PSP sends the customer back to the web front end's "Zahlung vornehmen" page.
export PSP_RETURN_URL="${PSP_RETURN_URL:-http://$WEB_ADDRESS/zahlung}"
# The web front end forwards the customer's address (X-Forwarded-For) for throttling and the IP whitelist.
export TRUSTED_PROXIES="${TRUSTED_PROXIES:-127.0.0.1/32}"
mkdir -p var
if [ -S var/supervisor.sock ] && supervisorctl -c var/supervisord.conf pid >/dev/null 2>&1; then
  echo "make run is already running here (.venv/bin/supervisorctl -c var/supervisord.conf status); stop it first." >&2
  exit 1
fi

for cfg in services/*/config.yaml; do
  python -m kc_common.manage "$cfg" migrate
  python -m kc_common.manage "$cfg" seed
done
python -m kc_common.topology

color=""
[ -t 1 ] && color="--color"
conf=$(python deploy/supervisord_conf.py --procfile deploy/Procfile --run-dir var $color)

url="http://$GATEWAY_ADDRESS"
env_note=""
if [ "$KC_ENV" = development ]; then
  env_note="   (DEVELOPMENT secrets committed to the repository, a generated web session key)"
fi
web="http://$WEB_ADDRESS"
supervisord_pid=$$   # this shell becomes supervisord (exec below)
# The banner waits in the background. Started twice removed, so that it is not
# supervisord's child; it ends as soon as supervisord is gone (Ctrl-C).
( (
  for _ in $(seq 1 90); do
    kill -0 "$supervisord_pid" 2>/dev/null || exit 0
    if curl -fs --max-time 5 "$url/health" >/dev/null 2>&1 && curl -fs --max-time 5 "$web/health" >/dev/null 2>&1; then
      cat <<BANNER

  KundenCenter (web):  $web   (German customer center in the browser)
  Demo login:          demo@kundencenter.example / Hafen-Leuchtturm-2026   (Kundennummer 100001)
  API:                 $url   (health: $url/health, OpenAPI: $url/api/openapi.json)
  Try:                 see README.md, "Walk through the skeleton flow"
  Programs:            .venv/bin/supervisorctl -c $conf status   (logs: var/log/<name>.log)
  Environment:         KC_ENV=$KC_ENV$env_note

BANNER
      exit 0
    fi
    sleep 1
  done
  echo "KundenCenter did not become healthy within 90 s; see the log above and var/log/." >&2
) & )
# Programs' lines reach supervisord's stdout through a second open of /dev/stdout
# (the console listener); if that is a file (make run > file), both must append.
if [ -f /dev/stdout ]; then exec >>/dev/stdout; fi
exec supervisord -n -c "$conf"
