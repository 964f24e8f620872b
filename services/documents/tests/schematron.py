"""The official e-invoice business rules, run on our XML (tests only).

* ``en16931``: the CEN EN 16931 Schematron for UN/CEFACT CII (ConnectingEurope/eInvoicing-EN16931),
* ``xrechnung``: the German CIUS XRechnung Schematron for CII (itplr-kosit/xrechnung-schematron),

both compiled to XSLT and vendored in ``validators/`` (provenance and licences in its README).
Run with Saxon (``saxonche``, XSLT 3); the result is SVRL, whose ``failed-assert`` elements are
the violations. Each stylesheet is compiled once per test process.
"""
from functools import cache, lru_cache
from pathlib import Path

from lxml import etree

HERE = Path(__file__).resolve().parent / "validators"
STYLESHEETS = {
    "en16931": HERE / "en16931-cii" / "EN16931-CII-validation.xslt",
    "xrechnung": HERE / "xrechnung-cii" / "XRechnung-CII-validation.xsl",
}
SVRL = "{http://purl.oclc.org/dsdl/svrl}"


@lru_cache(maxsize=1)
def _processor():
    from saxonche import PySaxonProcessor
    return PySaxonProcessor(license=False)


@cache
def _executable(which):
    return _processor().new_xslt30_processor().compile_stylesheet(stylesheet_file=str(STYLESHEETS[which]))


def failed_asserts(xml_bytes, which):
    """[(rule id, flag, text)] of every failed assert (and successful report) of one Schematron."""
    proc = _processor()
    node = proc.parse_xml(xml_text=xml_bytes.decode("utf-8"))
    svrl = _executable(which).transform_to_string(xdm_node=node)
    root = etree.fromstring(svrl.encode("utf-8"))
    out = []
    for el in root.iter(f"{SVRL}failed-assert", f"{SVRL}successful-report"):
        text = " ".join("".join(el.itertext()).split())
        out.append((el.get("id") or "", el.get("flag") or "", f"{text} @ {el.get('location')}"))
    return out


def assert_valid(xml_bytes, *which, warnings=True):
    """Fail naming every violated rule; warnings count too unless ``warnings=False``."""
    problems = {}
    for name in which or ("en16931",):
        found = [f for f in failed_asserts(xml_bytes, name) if warnings or f[1] != "warning"]
        if found:
            problems[name] = found
    assert not problems, "\n".join(f"{name}: {rule} [{flag}] {text}" for name, found in problems.items()
                                   for rule, flag, text in found)
