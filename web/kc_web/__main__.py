"""``python -m kc_web --address 127.0.0.1:8080 --gateway http://127.0.0.1:8000``

Serves the front end with eventlet's WSGI server (green threads, like the rest of the
system), so a page's API calls run concurrently and one slow page never blocks another.
"""
import eventlet

eventlet.monkey_patch()

import argparse  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402

from eventlet import wsgi  # noqa: E402

from kc_common import logs, metrics  # noqa: E402
from kc_web.app import ConfigError, create_app, secret_key_from_env  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(prog="kc_web", description=__doc__)
    parser.add_argument("--address", default=os.environ.get("WEB_ADDRESS", "127.0.0.1:8080"))
    parser.add_argument("--gateway", default=os.environ.get("GATEWAY_URL") or
                        "http://" + os.environ.get("GATEWAY_ADDRESS", "127.0.0.1:8000"))
    # Prometheus metrics (docs/metrics.md): host:port, a bare port = all interfaces, "" or 0 = off.
    parser.add_argument("--metrics-address",
                        default=os.environ.get("WEB_METRICS_ADDRESS", "127.0.0.1:9187"))
    args = parser.parse_args(argv)
    try:
        logs.configure("web")  # LOG_FORMAT=text|json, LOG_LEVEL
    except ValueError as exc:
        print(f"kc_web: {exc}", file=sys.stderr)
        return 2
    log = logging.getLogger("kc_web")
    try:
        secret_key, generated = secret_key_from_env()
    except ConfigError as exc:
        print(f"kc_web: {exc}", file=sys.stderr)
        return 2
    if generated:
        log.warning("WEB_SECRET_KEY is not set: using a generated development key "
                    "(sessions end when this process restarts; set WEB_SECRET_KEY in production)")
    app = create_app(args.gateway, secret_key)
    host, _, port = args.address.rpartition(":")
    sock = eventlet.listen((host or "127.0.0.1", int(port)))
    # Accepted connections inherit it: no Nagle delay between the headers and the body.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    metrics.serve(args.metrics_address)
    log.info("KundenCenter web on http://%s (gateway %s)", args.address, args.gateway)
    wsgi.server(sock, app, log=logging.getLogger("kc_web.access"), log_output=False,
                max_size=int(os.environ.get("WEB_MAX_CONNECTIONS", "200")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
