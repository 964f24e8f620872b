"""Operator command: the recurring billing run on demand, with a progress bar and a summary.

    python -m kc_billing.run [--config services/billing/config.yaml] [--as-of 2026-12-01]

Safe to start while the scheduled run (nameko timer) or another command runs:
customers another run holds are skipped (and billed by that run), and a run
that is killed is resumed by simply running again: the run lists the aborted
runs whose work it completed. Customers are billed ``--chunk-size`` at a time
(default ``RUN_CHUNK_SIZE``, 250) in one transaction each. Customers billing has no address replica for are
fetched from identity over the bus (``identity.get_customer``).

The as_of is bounded as for the staff route and the timer: at most
``RUN_MAX_DAYS_AHEAD`` (7) days ahead of today and ``RUN_MAX_DAYS_BACK`` (31) back
(exit code 2 otherwise). An operator who really means a date further out sets the
bound for that one command: ``BILLING_RUN_MAX_DAYS_AHEAD=40 python -m kc_billing.run ...``.
Ctrl-C rolls back the current chunk of customers and records the run as aborted (exit code 130).
"""
import argparse
import datetime as dt
import os
import sys

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from kc_billing import billrun, runs
from kc_billing.models import metadata
from kc_billing.settings import BillingSettings
from kc_common.clock import berlin_today
from kc_common.db import StandaloneDatabase
from kc_common.errors import ValidationFailed
from kc_common.manage import load_config


def identity_fetcher(config):
    """``identity.get_customer`` through a standalone RPC proxy (lazily connected)."""
    state = {}

    def fetch(customer_id):
        if "proxy" not in state:
            from nameko.standalone.rpc import ClusterRpcProxy
            state["cm"] = ClusterRpcProxy({"AMQP_URI": config["AMQP_URI"]}, timeout=float(
                config.get("RPC_TIMEOUT") or 10))
            state["proxy"] = state["cm"].start()
        return state["proxy"].identity.get_customer(customer_id=customer_id)

    def close():
        if "cm" in state:
            state["cm"].stop()
    return fetch, close


def main(argv=None):
    parser = argparse.ArgumentParser(prog="kc_billing.run", description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="services/billing/config.yaml")
    parser.add_argument("--as-of", type=dt.date.fromisoformat, default=None,
                        help="bill every period starting on or before this date (default: today)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--chunk-size", type=int, default=None,
                        help="customers billed per transaction (default: RUN_CHUNK_SIZE)")
    # Fault injection for the crash/resume test: die (no cleanup, open transaction) before
    # committing the first chunk that would take the committed customers past this many.
    parser.add_argument("--crash-after", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    config = load_config(args.config)
    settings = BillingSettings(config)
    db = StandaloneDatabase(metadata, config["DATABASE_URL"], "billing")
    as_of = args.as_of or berlin_today()
    console = Console(stderr=True)
    try:
        runs.check_as_of(as_of, settings)
    except ValidationFailed as exc:
        db.engine.dispose()
        console.print(f"[red]{exc.message}[/red] " + " ".join(exc.fields.get("as_of", [])))
        return 2
    fetch, close = identity_fetcher(config)
    committed = {"n": 0}

    def before_commit(customer_ids):
        if args.crash_after is not None and committed["n"] + len(customer_ids) > args.crash_after:
            os._exit(17)
        committed["n"] += len(customer_ids)

    try:
        with Progress(TextColumn("Abrechnungslauf {task.fields[as_of]}"), BarColumn(),
                      MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                      disable=args.no_progress) as progress:
            task = progress.add_task("run", total=None, as_of=as_of.isoformat())

            def on_progress(done, total):
                progress.update(task, completed=done, total=total)
            summary = billrun.run_billing(db, as_of, settings, started_by="cli",
                                          fetch_customer=fetch, progress=on_progress,
                                          before_commit=before_commit, chunk_size=args.chunk_size)
    except KeyboardInterrupt:
        console.print("[yellow]Abrechnungslauf abgebrochen; der nächste Lauf schließt ihn ab.[/yellow]")
        return 130
    finally:
        close()
        db.engine.dispose()
    table = Table(title=f"Abrechnungslauf {summary['run_id']} zum {as_of:%d.%m.%Y}")
    table.add_column("Kennzahl")
    table.add_column("Wert", justify="right")
    for label, key in (("Kunden fällig", "customers"), ("Rechnungen", "invoices"),
                       ("Vertragsperioden", "contracts"), ("Summe brutto (EUR)", "gross"),
                       ("von anderem Lauf abgerechnet", "skipped"), ("Fehler", "errors")):
        table.add_row(label, str(summary[key]))
    table.add_row("abgebrochene Läufe abgeschlossen",
                  ", ".join(str(r) for r in summary["resumed_runs"]) or "–")
    Console().print(table)
    return 1 if summary["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
