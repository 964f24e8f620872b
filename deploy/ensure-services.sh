#!/usr/bin/env bash
# Make sure RabbitMQ (and, with --postgres, PostgreSQL) answer; start local ones if installed.
# Usage: deploy/ensure-services.sh [--postgres] [--management]
set -euo pipefail
want_pg=0; want_mgmt=0
for a in "$@"; do case $a in --postgres) want_pg=1;; --management) want_mgmt=1;; esac; done

up() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
wait_port() { for _ in $(seq 1 60); do up "$1" "$2" && return 0; sleep 1; done; return 1; }

amqp_hostport=$(python3 - <<'PY'
import os, urllib.parse
u = urllib.parse.urlparse(os.environ.get("AMQP_URI", "pyamqp://guest:guest@127.0.0.1:5672/"))
print(u.hostname or "127.0.0.1", u.port or 5672)
PY
)
read -r amqp_host amqp_port <<<"$amqp_hostport"

if ! up "$amqp_host" "$amqp_port"; then
  if command -v rabbitmq-server >/dev/null; then
    echo "starting local RabbitMQ ..."
    rabbitmq-server -detached
    wait_port "$amqp_host" "$amqp_port" || { echo "RabbitMQ did not come up on $amqp_host:$amqp_port" >&2; exit 1; }
  else
    echo "No message broker at $amqp_host:$amqp_port. Install RabbitMQ (Debian: apt-get install rabbitmq-server) or set AMQP_URI." >&2
    exit 1
  fi
fi

# The management API answers, and a vhost can be created and deleted (what every test does).
mgmt_ok() {
  python3 - <<'PY'
import base64, sys, urllib.request
auth = "Basic " + base64.b64encode(b"guest:guest").decode()
def call(method, path):
    req = urllib.request.Request("http://127.0.0.1:15672/api/" + path, method=method,
                                 headers={"Authorization": auth, "content-type": "application/json"})
    urllib.request.urlopen(req, timeout=10).read()
try:
    call("GET", "overview")
    call("PUT", "vhosts/kc_ensure_services")
    call("DELETE", "vhosts/kc_ensure_services")
except Exception as exc:
    print(f"management API not ready: {exc}", file=sys.stderr)
    sys.exit(1)
PY
}

# A broker under a memory or disk alarm accepts connections but blocks every publisher:
# say so now instead of letting the tests wait.
if [[ $amqp_host == 127.0.0.1 || $amqp_host == localhost ]] && command -v rabbitmq-diagnostics >/dev/null \
   && ! alarms=$(rabbitmq-diagnostics -q check_local_alarms 2>&1) && grep -qi "alarm" <<<"$alarms"; then
  echo "RabbitMQ reports a resource alarm (publishers are blocked):" >&2
  echo "$alarms" >&2
  exit 1
fi

if [ $want_mgmt = 1 ]; then
  if ! up 127.0.0.1 15672; then
    # The tests create a fresh vhost per test through the management API.
    rabbitmq-plugins enable rabbitmq_management >/dev/null
    wait_port 127.0.0.1 15672 || { echo "RabbitMQ management API did not come up on :15672" >&2; exit 1; }
  fi
  for i in $(seq 1 60); do mgmt_ok 2>/dev/null && break; sleep 1; done
  mgmt_ok || { echo "RabbitMQ management API on :15672 does not create vhosts (see above)" >&2;
               rabbitmq-diagnostics -q alarms >&2 || true; exit 1; }
fi

if [ $want_pg = 1 ] && ! up 127.0.0.1 5432; then
  if command -v pg_ctlcluster >/dev/null; then
    echo "starting local PostgreSQL ..."
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
    wait_port 127.0.0.1 5432 || { echo "PostgreSQL did not come up on :5432" >&2; exit 1; }
  else
    echo "No PostgreSQL at 127.0.0.1:5432 (needed by the tests). Install postgresql or set KC_TEST_PG_ADMIN_URL." >&2
    exit 1
  fi
fi
