"""support's request rules as pure functions (no bus, no database): states, what the customer
sees, the staff search, numbers and reply addresses."""
import datetime as dt
import re

import pytest

from kc_support import domain
from kc_support.schemas import STATES

NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)
TOKEN = "0123456789abcdef0123456789abcdef"


def test_a_customer_reply_opens_the_request_again_also_a_closed_one():
    assert domain.state_after_reply("customer") == "open"
    assert domain.state_after_reply("customer", "closed") == "open"  # what staff picked does not count


def test_a_staff_reply_leaves_the_state_the_agent_picks_answered_by_default():
    assert domain.state_after_reply("staff") == "answered"
    assert domain.state_after_reply("staff", "closed") == "closed"
    assert domain.state_after_reply("staff", "open") == "open"


def test_closing_stamps_closed_at_and_reopening_clears_it():
    assert domain.state_values("closed", NOW) == {"state": "closed", "updated_at": NOW, "closed_at": NOW}
    for state in ("open", "answered"):
        assert domain.state_values(state, NOW) == {"state": state, "updated_at": NOW, "closed_at": None}


def test_every_state_the_rules_reach_is_a_known_state():
    reached = {domain.state_after_reply("customer"), domain.state_after_reply("staff")}
    assert reached <= set(STATES) and "closed" in STATES


def test_notes_stay_internal_replies_do_not():
    assert not domain.is_internal("customer") and not domain.is_internal("staff")
    assert domain.is_internal("note")


@pytest.mark.parametrize("q, matches, misses", [
    ("SR-0001", ["SR-000123"], ["SR-100001"]),
    ("50%", ["Rabatt 50% falsch"], ["Rabatt 500 falsch"]),         # % is a character, not a wildcard
    ("a_b", ["Datei a_b.pdf"], ["Datei axb.pdf"]),                 # so is _
    ("C:\\temp", ["Pfad C:\\temp fehlt"], ["Pfad C:temp fehlt"]),  # and the escape character itself
])
def test_the_staff_search_takes_wildcards_literally(q, matches, misses):
    pattern = domain.search_pattern(q)
    regex = _like_regex(pattern)
    for text in matches:
        assert regex.fullmatch(text), (pattern, text)
    for text in misses:
        assert not regex.fullmatch(text), (pattern, text)


def _like_regex(pattern, escape="\\"):
    """What SQL's LIKE ... ESCAPE '\\' matches (case as given)."""
    out, chars = [], iter(pattern)
    for c in chars:
        if c == escape:
            out.append(re.escape(next(chars)))
        elif c == "%":
            out.append(".*")
        elif c == "_":
            out.append(".")
        else:
            out.append(re.escape(c))
    return re.compile("".join(out), re.S)


def test_request_numbers_have_six_digits():
    assert domain.format_number(7) == "SR-000007"
    assert domain.format_number(1234567) == "SR-1234567"


def test_a_reply_address_carries_the_token_and_only_a_well_formed_one_is_read_back():
    base = "support@kundencenter.example"
    address = domain.reply_address(base, TOKEN)
    assert address == f"support+{TOKEN}@kundencenter.example"
    assert domain.token_from_address(base, f"<{address.upper()}>") == TOKEN
    assert domain.token_from_address(base, f"support+{TOKEN}@other.example") is None
    assert domain.token_from_address(base, f"sales+{TOKEN}@kundencenter.example") is None
    assert domain.token_from_address(base, "support+short@kundencenter.example") is None
    assert domain.token_from_address(base, f"support+{TOKEN[:-1]}g@kundencenter.example") is None
    assert domain.reply_address(None, TOKEN) is None and domain.reply_address("kein-at", TOKEN) is None
    assert domain.token_from_address(None, address) is None
    assert domain.token_from_address(base, None) is None
