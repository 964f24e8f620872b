"""Look-alike domain names: the checks registries apply before a name is registered.

One place for catalog (domains in orders) and dns (names in zones):
:func:`lookalike_problem` answers a German message for a name whose labels are not
valid IDNA 2008 (UTS #46 mapping), mix scripts beyond what UTS #39's "highly
restrictive" level allows (``pаypal`` with a Cyrillic а, ``micrοsoft`` with a Greek
ο, also given as A-labels ``xn--…``); ``None`` for a name that is fine. Scripts come
from ``confusable_homoglyphs`` (Unicode's Scripts.txt), the IDNA rules from ``idna``.
A label in one script (``москва``) is accepted: whole-script look-alikes are the
registry's policy for its zone, and a Latin-only zone (.de) refuses them there.
"""

from __future__ import annotations

import idna
from confusable_homoglyphs import categories

_NEUTRAL = {"COMMON", "INHERITED"}
# UTS #39 5.2 "Highly Restrictive": one script, or Latin with these East Asian sets.
_ALLOWED_MIXES = ({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}, {"LATIN", "HAN", "BOPOMOFO"},
                  {"LATIN", "HAN", "HANGUL"})
_SCRIPT_NAMES = {"LATIN": "lateinisch", "CYRILLIC": "kyrillisch", "GREEK": "griechisch",
                 "ARMENIAN": "armenisch", "HEBREW": "hebräisch", "ARABIC": "arabisch",
                 "HAN": "chinesisch", "HANGUL": "koreanisch", "HIRAGANA": "japanisch (Hiragana)",
                 "KATAKANA": "japanisch (Katakana)", "CHEROKEE": "Cherokee", "GEORGIAN": "georgisch"}


def scripts(label: str) -> set[str]:
    """The scripts of a label's letters (digits, hyphen and combining marks are neutral)."""
    return {s for s in categories.unique_aliases(label) if s not in _NEUTRAL}


def lookalike_problem(name: str) -> str | None:
    """A German message if ``name`` (U- or A-labels, with or without trailing dot) is
    not a valid IDN or could be mistaken for another name; else ``None``."""
    for label in name.strip().rstrip(".").split("."):
        problem = _label_problem(label)
        if problem:
            return problem
    return None


def _label_problem(label: str) -> str | None:
    if not label or label == "*" or (label.isascii() and not label.lower().startswith("xn--")):
        return None
    try:
        if label.isascii():  # an A-label: what it stands for
            unicode_label = idna.decode(label)
        else:
            unicode_label = idna.decode(idna.encode(label, uts46=True))
    except (idna.IDNAError, UnicodeError):
        return f"„{label}“ ist kein gültiger internationaler Domainname (IDNA 2008)."
    found = scripts(unicode_label)
    if len(found) > 1 and not any(found <= allowed for allowed in _ALLOWED_MIXES):
        names = ", ".join(sorted(_SCRIPT_NAMES.get(s, s.title()) for s in found))
        return (f"„{unicode_label}“ mischt Schriften ({names}) und ist damit leicht mit einem "
                f"anderen Namen zu verwechseln. Bitte verwenden Sie Zeichen aus einer Schrift.")
    return None
