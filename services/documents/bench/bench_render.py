"""Benchmark (not a test): invoice rendering speed.

    .venv/bin/python services/documents/bench/bench_render.py [--n 30] [--workers N] [--lines 2000]

Prints
* ms per one-page invoice in one warm process (median, p90), split into the
  EN 16931 XML (build + XSD check), HTML -> PDF/A-3b (weasyprint) and the
  Factur-X embedding;
* invoices per second with every core busy (the service's process pool, one
  worker per core), end to end including the transfer to and from the workers;
* one long invoice (``--lines``, default 2,000; 0 skips it): seconds in one
  warm process split the same way, pages and sizes, then end to end through
  the pool, and the worker's peak memory.
"""
import argparse
import os
import resource
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

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


def once(fn):
    """(result, wall s, CPU s) of one call."""
    start, start_cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - start, time.process_time() - start_cpu


def embed(base, xml):
    import facturx
    return facturx.generate_from_binary(base, xml, flavor="factur-x", level="en16931", check_xsd=False,
                                        pdf_metadata={"author": "a", "keywords": "k", "title": "t",
                                                      "subject": "s"})


def one_page(n):
    inv = invoice.sample_invoice(lines=3)
    invoice.render_invoice(inv)  # warm: fonts, stylesheet, schemas
    xml = invoice.build_xml(inv)
    html = rendering.render_html("invoice.html", **invoice.invoice_context(inv))
    base = rendering.html_to_pdf(html, pdf_variant="pdf/a-3b")
    print(f"one-page invoice, one warm process ({n} runs; wall median / p90, CPU median):")
    for label, fn in [
        ("EN 16931 XML build + XSD check", lambda: invoice.check_xml(invoice.build_xml(inv))),
        ("template + GiroCode", lambda: rendering.render_html("invoice.html", **invoice.invoice_context(inv))),
        ("HTML -> PDF/A-3b (weasyprint)", lambda: rendering.html_to_pdf(html, pdf_variant="pdf/a-3b")),
        ("embed XML (factur-x)", lambda: embed(base, xml)),
        ("total: render_invoice()", lambda: invoice.render_invoice(inv)),
    ]:
        median, p90, cpu = timed(fn, n)
        print(f"  {label:<34} {median:7.1f} ms  {p90:7.1f} ms  {cpu:7.1f} ms CPU")
    pdf, _ = invoice.render_invoice(inv)
    print(f"  size of one invoice PDF: {len(pdf) / 1024:.0f} KiB")
    return inv


def all_cores(inv, n, workers):
    renderer = ProcessRenderer(workers=workers)
    renderer.warm_up()
    total = n * workers * 2
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers * 2) as threads:  # more callers than workers
        list(threads.map(lambda _: renderer.run(invoice.render_invoice, inv), range(total)))
    elapsed = time.perf_counter() - start
    renderer.shutdown()
    print(f"all cores busy: {workers} worker process(es), {total} invoices in {elapsed:.2f} s "
          f"= {total / elapsed:.1f} invoices/s ({elapsed * 1000 / total:.1f} ms each)")


def checked(xml):
    invoice.check_xml(xml)
    return xml


def long_invoice(lines):
    import io

    from pypdf import PdfReader
    inv = invoice.sample_invoice(number="RE-BENCH-LANG", lines=lines)
    print(f"{lines:,}-line invoice, one warm process (one run; wall / CPU):")
    xml, *xml_t = once(lambda: checked(invoice.build_xml(inv)))
    html, *html_t = once(lambda: rendering.render_html("invoice.html", **invoice.invoice_context(inv)))
    base, *pdf_t = once(lambda: rendering.html_to_pdf(html, pdf_variant="pdf/a-3b"))
    pdf, *emb_t = once(lambda: embed(base, xml))
    for label, (wall, cpu) in [("EN 16931 XML build + XSD check", xml_t), ("template + GiroCode", html_t),
                               ("HTML -> PDF/A-3b (weasyprint)", pdf_t), ("embed XML (factur-x)", emb_t)]:
        print(f"  {label:<34} {wall:7.1f} s   {cpu:7.1f} s CPU")
    wall = sum(t[0] for t in (xml_t, html_t, pdf_t, emb_t))
    cpu = sum(t[1] for t in (xml_t, html_t, pdf_t, emb_t))
    pages = len(PdfReader(io.BytesIO(pdf)).pages)
    print(f"  {'total':<34} {wall:7.1f} s   {cpu:7.1f} s CPU   ({pages} pages, PDF {len(pdf) / 1024:.0f} KiB, "
          f"XML {len(xml) / 1024:.0f} KiB)")

    renderer = ProcessRenderer(workers=1, timeout=600)
    renderer.warm_up()
    _, wall, _ = once(lambda: renderer.run(invoice.render_invoice, inv))
    peak = renderer.run(resource.getrusage, resource.RUSAGE_SELF).ru_maxrss / 1024
    renderer.shutdown()
    print(f"  through the pool (end to end, job and result as files): {wall:.1f} s; "
          f"worker's peak memory {peak:.0f} MiB")


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=30, help="invoices per measurement")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--lines", type=int, default=2000, help="lines of the long invoice (0: skip)")
    args = parser.parse_args(argv)

    inv = one_page(args.n)
    all_cores(inv, args.n, args.workers)
    if args.lines:
        long_invoice(args.lines)
    print(f"(cpu count {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}; other work on the "
          f"machine slows every figure)", file=sys.stderr)


if __name__ == "__main__":
    main()
