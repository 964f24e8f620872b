"""Branch coverage per package, printed at the end of `make test` (from the data pytest-cov wrote).

    python deploy/coverage_summary.py [DATA_FILE]     (default: .coverage, as configured in pyproject.toml)

A package's figure counts its statements and its branches (coverage's own "Cover" with
branch = true): (covered lines + covered branches) / (lines + branches). Files no test
imported count as not covered at all. Prints only: no figure fails the build.
"""
import json
import os
import sys
import tempfile
from pathlib import Path

import coverage

PACKAGES = ("kc_common", "kc_billing", "kc_catalog", "kc_dns", "kc_documents", "kc_identity",
            "kc_support", "kc_gateway", "kc_web")


def package_of(path):
    """The measured package a source file belongs to (its first kc_* directory of that name)."""
    for part in Path(path).parts:
        if part in PACKAGES:
            return part
    return None


def summarize(files):
    """{package: totals} from the "files" of coverage's JSON report."""
    totals = {name: dict(statements=0, missing=0, branches=0, partial=0, covered=0, files=0)
              for name in PACKAGES}
    for path, entry in files.items():
        name = package_of(path)
        if name is None:
            continue
        s, row = entry["summary"], totals[name]
        row["files"] += 1
        row["statements"] += s["num_statements"]
        row["missing"] += s["missing_lines"]
        row["branches"] += s.get("num_branches", 0)
        row["partial"] += s.get("num_partial_branches", 0)
        row["covered"] += s["covered_lines"] + s.get("covered_branches", 0)
    return totals


def percent(row):
    total = row["statements"] + row["branches"]
    return 100.0 * row["covered"] / total if total else 100.0


def table(totals):
    head = f"{'package':<14}{'files':>6}{'stmts':>8}{'miss':>7}{'branch':>8}{'partial':>8}{'cover':>8}"
    lines = ["Branch coverage per package (make test; print only)", head, "-" * len(head)]
    whole = dict(statements=0, missing=0, branches=0, partial=0, covered=0, files=0)
    for name in PACKAGES:
        row = totals[name]
        for key in whole:
            whole[key] += row[key]
        if not row["files"]:
            lines.append(f"{name:<14}{'(not measured)':>30}")
            continue
        lines.append(f"{name:<14}{row['files']:>6}{row['statements']:>8}{row['missing']:>7}"
                     f"{row['branches']:>8}{row['partial']:>8}{percent(row):>7.1f}%")
    lines.append("-" * len(head))
    lines.append(f"{'total':<14}{whole['files']:>6}{whole['statements']:>8}{whole['missing']:>7}"
                 f"{whole['branches']:>8}{whole['partial']:>8}{percent(whole):>7.1f}%")
    return "\n".join(lines)


def main(argv):
    data_file = argv[1] if len(argv) > 1 else None
    cov = coverage.Coverage(data_file=data_file) if data_file else coverage.Coverage()
    cov.load()
    if not cov.get_data().measured_files():
        print("coverage: no data (run the tests with --cov)")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "coverage.json")
        cov.json_report(outfile=out, ignore_errors=True)
        with open(out) as fh:
            files = json.load(fh)["files"]
    print(table(summarize(files)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
