"""What branch coverage costs `make test`: the same tests with and without it, interleaved.

    python bench/coverage_overhead.py [--rounds N] [PYTEST ARGS ...]
    (default: services/catalog services/support; e.g. tests/test_e2e_support.py for the
    service processes the end-to-end tests start)

The anchor is the same selection without coverage (``-p no:cov``), run alternately with
``--cov --cov-report=`` in the same session. Prints wall time and CPU time (user + system
of pytest and every process it started and waited for) per run and the ratios of the
medians. On a shared machine wall time is noisy: CPU time is the steadier figure.
With COVERAGE_PROCESS_START=pyproject.toml and COVERAGE_FILE=$PWD/.coverage in the
environment (what `make test COVERAGE_PROCESSES=1` sets) the processes the tests start are
measured too. Not part of `make test`: figures, not a timed assertion. Writes .coverage.
"""
import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(args):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", *args], cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    last = (proc.stdout.strip().splitlines() or [""])[-1]
    return wall, cpu, proc.returncode, last


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    options, selection = parser.parse_known_args(argv)
    selection = selection or ["services/catalog", "services/support"]
    figures = {"without": [], "with": []}
    for n in range(options.rounds):
        for label, extra in (("without", ["-p", "no:cov"]), ("with", ["--cov", "--cov-report="])):
            wall, cpu, rc, last = run([*extra, *selection])
            figures[label].append((wall, cpu))
            print(f"round {n + 1} {label:>7} coverage: wall {wall:6.1f} s  cpu {cpu:6.1f} s  "
                  f"load {os.getloadavg()[0]:4.1f}  rc={rc}  {last}", flush=True)
    wall_0, cpu_0 = (statistics.median(f[i] for f in figures["without"]) for i in (0, 1))
    wall_1, cpu_1 = (statistics.median(f[i] for f in figures["with"]) for i in (0, 1))
    print(f"\n| selection | wall without / with | CPU without / with | wall ratio | CPU ratio |\n"
          f"|---|---|---|---|---|\n"
          f"| {' '.join(selection)} | {wall_0:.1f} s / {wall_1:.1f} s | {cpu_0:.1f} s / {cpu_1:.1f} s "
          f"| {wall_1 / wall_0:.2f} | {cpu_1 / cpu_0:.2f} |")


if __name__ == "__main__":
    main()
