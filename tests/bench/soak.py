"""Benchmark: the soak workload on the SQLite default and on PostgreSQL, with figures.

    .venv/bin/python tests/bench/soak.py [--seconds 60] [--customers 5] [--database both]
    make bench-soak [BENCH_ARGS="--seconds 30"]

Starts the whole system (every process of deploy/Procfile, as tests/test_soak.py does:
own vhost, own databases, free ports, demo data seeded), runs the soak workload of
tests/soak_workload.py for ``--seconds`` (customers order, change tariffs, cancel, open
support requests with attachments, pay through the PSP simulator; a support agent
answers), then checks the result as the soak test does and prints, per database:
requests/s, p50/p99 latency (overall and per action), the answers by status (5xx and
unanswered counted), and the longest time any service did not answer ``/health``.
The figures go to docs/resilience.md.

Not a test (pytest never collects it: the file is not named ``test_*.py`` and its one
function is ``bench_*``). It runs itself through ``pytest.main`` so that
``tests.conftest.running_system`` gets its fixtures (``rabbit_manager``,
``database_factory``, ``tmp_path_factory``) and every vhost, database and temporary
directory is cleaned up as after a test run. Exit code 0 when every database ran and
its checks held, 1 otherwise (the figures are printed either way).
"""
import eventlet

eventlet.monkey_patch()  # as the root conftest does, before anything imports socket

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter, defaultdict  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DATABASES = ("sqlite", "postgresql")


class Bench:
    """The command line's options and the results, shared with ``bench_soak`` as a fixture."""

    def __init__(self, args):
        self.args = args
        self.results = {}       # database -> figures
        self.failures = {}      # database -> what went wrong

    @pytest.fixture
    def bench(self):
        return self


def bench_soak(request, bench):
    from tests.conftest import System, running_system
    for database in bench.args.databases:
        try:
            with running_system(System, request, database=database) as system:
                bench.results[database] = measure(system, request, bench.args)
        except Exception as exc:  # noqa: BLE001 - reported with the figures of the others
            bench.failures[database] = f"{type(exc).__name__}: {exc}"[:3000]
    assert not bench.failures, bench.failures


def measure(system, request, args):
    """Run the workload on ``system``; its figures and the soak test's checks."""
    from tests.conftest import customer_maker, staff_login
    from tests.soak_workload import (
        HealthWatch,
        bad_log_lines,
        dead_letters,
        run_workload,
        settle,
        traceback_context,
    )
    rabbit_manager = request.getfixturevalue("rabbit_manager")
    agent = staff_login(system, "support")
    watch = HealthWatch(system.url, check=system.check_running).start()
    try:
        recorder, customers, seconds = run_workload(
            system, customer_maker(system), agent, customers=args.customers, seconds=args.seconds,
            seed=args.seed)
    finally:
        watch.stop()
    settle_started = time.monotonic()
    problems = settle(system.url, recorder, customers, agent, timeout=args.settle)
    figures = dict(recorder.figures(seconds))
    figures.update(
        per_action=per_action(recorder.calls),
        health=health_gaps(watch),
        settled_s=round(time.monotonic() - settle_started, 1),
        problems=problems[:20], problem_count=len(problems),
        dead_letters={q: n for q, (n, _) in dead_letters(rabbit_manager, system).items()},
        exited=[f[:300] for f in watch.failures[:3]],
        bad_log_lines=bad_log_lines(system)[:10],
        logs=str(system.logs),
    )
    figures["tracebacks"] = {name: traceback_context(system, name, before=8, after=40)
                             for name in sorted({line.split(":")[0] for line in figures["bad_log_lines"]})}
    return figures


def per_action(calls):
    """Figures of each action: count, p50/p99 latency, non-2xx answers by status."""
    from tests.soak_workload import percentile
    grouped = defaultdict(list)
    for call in calls:
        grouped[call.action].append(call)
    found = {}
    for action, group in sorted(grouped.items()):
        latencies = sorted(c.elapsed for c in group)
        found[action] = {
            "n": len(group),
            "p50_ms": round(1000 * percentile(latencies, 50)),
            "p99_ms": round(1000 * percentile(latencies, 99)),
            "max_ms": round(1000 * latencies[-1]),
            "non_2xx": dict(sorted(Counter(c.status for c in group if not answered(c)).items())),
        }
    return found


def answered(call):
    """A success: 2xx (the PSP simulator's page answers a confirmation with a 303 redirect)."""
    return call.ok or (call.action == "psp_confirm" and call.status == 303)


def health_gaps(watch):
    """Longest time (s) each service was not seen ``ok`` by /health (all-ok gap included).

    A poll that failed as a whole (no answer) counts against every service."""
    from tests.conftest import SERVICES
    last = dict.fromkeys(SERVICES, watch.started)
    gaps = dict.fromkeys(SERVICES, 0.0)
    for t, _, services, took in watch.samples:
        for name in SERVICES:
            if isinstance(services, dict) and services.get(name) == "ok":
                gaps[name] = max(gaps[name], t + took - last[name])
                last[name] = t + took
    for name in SERVICES:
        gaps[name] = round(max(gaps[name], watch.stopped - last[name]), 2)
    worst = max(gaps, key=gaps.get)
    took = sorted(s[3] for s in watch.samples)
    return {"longest_gap_s": gaps[worst], "worst_service": worst, "per_service_s": gaps,
            "longest_not_all_ok_s": watch.longest_gap(),
            "polls": len(watch.samples), "polls_not_all_ok": len(watch.bad()),
            "slowest_poll_s": round(took[-1], 2) if took else None}


# --- the report -----------------------------------------------------------------------------


def table(rows, headers):
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows)]
    line = "  ".join(f"{{:>{w}}}" for w in widths)
    return "\n".join([line.format(*headers), line.format(*("-" * w for w in widths))]
                     + [line.format(*map(str, row)) for row in rows])


def report(bench, args, load_before, load_after, started):
    out = [f"Soak benchmark {started:%Y-%m-%d %H:%M} UTC on {platform.node()} "
           f"({os.cpu_count()} CPUs); load average before {load_before}, after {load_after}",
           f"command: .venv/bin/python tests/bench/soak.py --seconds {args.seconds:g} "
           f"--customers {args.customers} --database {args.database}"
           + (f" --seed {args.seed}" if args.seed is not None else ""), ""]
    for database in args.databases:
        if database in bench.failures and database not in bench.results:
            out += [f"== {database}: did not run: {bench.failures[database]}", ""]
            continue
        f = bench.results[database]
        h = f["health"]
        statuses = ", ".join(f"{s or 'none'}: {n}" for s, n in f["statuses"].items())
        out += [
            f"== {database}: {args.customers} customers + 1 support agent, {f['seconds']} s",
            table([[f["requests"], f["requests_per_s"], f["p50_ms"], f["p99_ms"], f["max_ms"],
                    f["errors_5xx_or_none"], f["refused_4xx"], h["longest_gap_s"]]],
                  ["requests", "req/s", "p50 ms", "p99 ms", "max ms", "5xx+unanswered",
                   "4xx", "health gap s"]),
            f"answers by status: {statuses}",
            "",
            table([[a, v["n"], v["p50_ms"], v["p99_ms"], v["max_ms"],
                    ", ".join(f"{s or 'none'}: {n}" for s, n in v["non_2xx"].items()) or "-"]
                   for a, v in f["per_action"].items()],
                  ["action", "n", "p50 ms", "p99 ms", "max ms", "non-2xx"]),
            "",
            f"health: {h['polls']} polls, {h['polls_not_all_ok']} not all ok, slowest answer "
            f"{h['slowest_poll_s']} s; longest time a service was not ok: {h['longest_gap_s']} s "
            f"({h['worst_service']}; per service {h['per_service_s']}); longest time not every "
            f"service was ok: {h['longest_not_all_ok_s']} s",
            f"checks: {f['problem_count']} problem(s) after settling {f['settled_s']} s, "
            f"dead letters {f['dead_letters'] or 'none'}, processes exited "
            f"{f['exited'] or 'none'}, bad log lines {len(f['bad_log_lines'])}",
        ]
        out += [f"  problem: {p}" for p in f["problems"]]
        out += [f"  log: {line}" for line in f["bad_log_lines"]]
        for name, context in f.get("tracebacks", {}).items():
            out += [f"  --- first traceback of {name} ({f['logs']}/{name}.log):",
                    *("    " + line for line in context.splitlines())]
        if database in bench.failures:
            out += [f"  failed: {bench.failures[database]}"]
        out.append("")
    return "\n".join(out)


def healthy(bench, args):
    for database in args.databases:
        f = bench.results.get(database)
        if f is None or database in bench.failures or f["problem_count"] or f["dead_letters"] \
                or f["exited"] or f["bad_log_lines"]:
            return False
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="workload time per database")
    parser.add_argument("--customers", type=int, default=5, help="concurrent customers")
    parser.add_argument("--database", choices=[*DATABASES, "both"], default="both")
    parser.add_argument("--seed", type=int, default=None, help="seed of the customers' choices")
    parser.add_argument("--settle", type=float, default=120.0,
                        help="seconds to wait for the asynchronous work before checking")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON here")
    parser.add_argument("pytest_args", nargs="*", help="passed on to pytest (after --)")
    args = parser.parse_args(argv)
    args.databases = DATABASES if args.database == "both" else (args.database,)

    bench = Bench(args)
    started = datetime.now(UTC)
    load_before = "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    os.chdir(ROOT)  # pyproject.toml's pytest settings, the Procfile's relative paths
    # A base directory of its own: the processes' logs stay (pytest's shared one keeps only
    # the last three runs of anyone on the machine).
    basetemp = tempfile.mkdtemp(prefix="kc-bench-soak-")
    code = pytest.main([__file__, "-q", "-s", "-p", "no:cacheprovider", "-o", "python_functions=bench_*",
                        f"--basetemp={basetemp}",
                        "-W", "ignore::DeprecationWarning", *args.pytest_args], plugins=[bench])
    load_after = "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    print("\n" + report(bench, args, load_before, load_after, started))
    print(f"logs and databases: {basetemp}")
    if args.json:
        Path(args.json).write_text(json.dumps({"started": started.isoformat(), "args": {
            k: v for k, v in vars(args).items() if k != "pytest_args"}, "load_before": load_before,
            "load_after": load_after, "results": bench.results, "failures": bench.failures},
            indent=2, default=str))
    return 0 if code == 0 and healthy(bench, args) else 1


if __name__ == "__main__":
    sys.exit(main())
