"""Benchmark (not a test): invoice rendering speed.

    .venv/bin/python services/documents/bench/bench_render.py [--n 30] [--workers N]

Prints
* ms per one-page invoice in one warm process (median, p90), split into the
  EN 16931 XML (build + XSD check), HTML -> PDF/A-3b (weasyprint) and the
  Factur-X embedding;
* invoices per second with every core busy (the service's process pool, one
  worker per core), end to end including the pickling to and from the workers.
"""
import argparse
import os
import statistics
import sys
import time

from kc_documents import invoice, rendering
from kc_documents.pool import ProcessRenderer


def timed(fn, n):
    """(median wall ms, p90 wall ms, median CPU ms): CPU time is less disturbed by other load."""
    wall, cpu = [], []
    for _ in range(n):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    wall.sort()
    return statistics.median(wall), wall[max(0, int(len(wall) * 0.9) - 1)], statistics.median(cpu)


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=30, help="invoices per measurement")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    args = parser.parse_args(argv)

    inv = invoice.sample_invoice(lines=3)
    invoice.render_invoice(inv)  # warm: fonts, stylesheet, schemas
    xml = invoice.build_xml(inv)
    ctx = invoice.invoice_context(inv)
    html = rendering.render_html("invoice.html", **ctx)
    base = rendering.html_to_pdf(html, pdf_variant="pdf/a-3b")
    import facturx

    print(f"one-page invoice, one warm process ({args.n} runs; wall median / p90, CPU median):")
    for label, fn in [
        ("EN 16931 XML build + XSD check", lambda: invoice.check_xml(invoice.build_xml(inv))),
        ("template + GiroCode", lambda: rendering.render_html("invoice.html", **invoice.invoice_context(inv))),
        ("HTML -> PDF/A-3b (weasyprint)", lambda: rendering.html_to_pdf(html, pdf_variant="pdf/a-3b")),
        ("embed XML (factur-x)", lambda: facturx.generate_from_binary(
            base, xml, flavor="factur-x", level="en16931", check_xsd=False,
            pdf_metadata={"author": "a", "keywords": "k", "title": "t", "subject": "s"})),
        ("total: render_invoice()", lambda: invoice.render_invoice(inv)),
    ]:
        median, p90, cpu = timed(fn, args.n)
        print(f"  {label:<34} {median:7.1f} ms  {p90:7.1f} ms  {cpu:7.1f} ms CPU")
    pdf, _ = invoice.render_invoice(inv)
    print(f"  size of one invoice PDF: {len(pdf) / 1024:.0f} KiB")

    renderer = ProcessRenderer(workers=args.workers)
    renderer.warm_up()
    total = args.n * args.workers * 2
    start = time.perf_counter()
    futures = [renderer.submit(invoice.render_invoice, inv) for _ in range(total)]
    for future in futures:
        future.result()
    elapsed = time.perf_counter() - start
    renderer.shutdown()
    print(f"all cores busy: {args.workers} worker process(es), {total} invoices in {elapsed:.2f} s "
          f"= {total / elapsed:.1f} invoices/s ({elapsed * 1000 / total:.1f} ms each)")
    print(f"(cpu count {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}; other work on the "
          f"machine slows every figure)", file=sys.stderr)


if __name__ == "__main__":
    main()
