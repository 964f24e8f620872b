"""HTML templates to PDF with weasyprint, done safely and the same everywhere.

* Templates are Jinja2 files bundled in ``templates/``; they get their data as
  arguments and never fetch anything: :class:`AssetFetcher` serves only files
  below ``assets/`` (the stylesheet and the bundled fonts) and refuses every
  other URL (http, https, file outside the assets; only inline PNG data the
  template made itself, e.g. the GiroCode, is accepted), so a value that
  sneaks a URL into a document cannot make the renderer reach the network or
  read local files.
* Fonts: DejaVu Sans, subset and bundled (``assets/fonts``): identical output on
  every machine, no system font lookup (``font-family`` names only ``KC Sans``).
* The functions here are CPU-bound and run in worker processes (see
  :mod:`kc_documents.pool`); the stylesheet and font configuration are built
  once per process and reused.
"""
import atexit
import base64
import io
import logging
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote, urlparse

import jinja2

from kc_documents.formatting import FILTERS

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
ASSETS = HERE / "assets"
TEMPLATES = HERE / "templates"
BASE_URL = ASSETS.as_uri() + "/"
DATA_PNG = "data:image/png;base64,"


@lru_cache(maxsize=1)
def jinja_env():
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                             autoescape=jinja2.select_autoescape(["html"]),
                             trim_blocks=True, lstrip_blocks=True)
    env.filters.update(FILTERS)
    from kc_common.seller import legal_lines
    env.globals["legal_lines"] = legal_lines  # the statutory footer of every document (§ 35a GmbHG)
    return env


def render_html(template, **context):
    return jinja_env().get_template(template).render(**context)


def _fetcher_class():
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    class AssetFetcher(URLFetcher):
        """Serves bundled assets only; anything else is refused (no network, no other files)."""

        def fetch(self, url, headers=None):
            if url.startswith(DATA_PNG):  # inline images the template made itself (QR codes)
                return URLFetcherResponse(url[:40], body=base64.b64decode(url[len(DATA_PNG):]),
                                          headers={"Content-Type": "image/png"})
            parsed = urlparse(url)
            if parsed.scheme != "file":
                raise ValueError(f"refused to fetch {url[:80]!r}: only bundled assets")
            path = Path(unquote(parsed.path)).resolve()
            if ASSETS not in path.parents or not path.is_file():
                raise ValueError(f"refused to fetch {url[:80]!r}: not a bundled asset")
            return URLFetcherResponse(path.as_uri(), body=path.read_bytes())

    return AssetFetcher


@lru_cache(maxsize=1)
def _engine():
    """Per process: fetcher, font configuration and the parsed base stylesheet."""
    from weasyprint import CSS
    from weasyprint.text.fonts import FontConfiguration
    fetcher = _fetcher_class()()
    font_config = FontConfiguration()
    css = CSS(filename=str(ASSETS / "document.css"), base_url=BASE_URL,
              url_fetcher=fetcher, font_config=font_config)
    # Release the font configuration before interpreter shutdown (its __del__ needs live modules).
    atexit.register(_engine.cache_clear)
    return fetcher, font_config, css


def html_to_pdf(html, *, pdf_variant=None, attachments=None):
    """One HTML string to PDF bytes (PDF/A-3b when ``pdf_variant="pdf/a-3b"``)."""
    from weasyprint import HTML
    fetcher, font_config, css = _engine()
    document = HTML(string=html, base_url=BASE_URL, url_fetcher=fetcher)
    # full_fonts: the bundled fonts are already small subsets, so embedding them whole
    # skips weasyprint's per-document subsetting (the costliest step of a short PDF).
    return document.write_pdf(stylesheets=[css], font_config=font_config, pdf_variant=pdf_variant,
                              full_fonts=True, attachments=attachments)


def render_pdf(template, *, pdf_variant=None, **context):
    return html_to_pdf(render_html(template, **context), pdf_variant=pdf_variant)


def warm_up():
    """Build the per-process engine (called once when a worker process starts)."""
    _engine()
    jinja_env()
    return True


def pdf_text(pdf_bytes):
    """All text of a PDF (tests, checks); no-break spaces (1.234,56\u00a0€) read as spaces."""
    from pypdf import PdfReader
    text = "\n".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(pdf_bytes)).pages)
    return text.replace("\u00a0", " ")
