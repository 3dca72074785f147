"""Text containment and equality used by data-flow norms: whole words, not substrings."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from fsa_guard.action import Call
from fsa_guard.verify.functions import HistoryIndex, contains, static_functions, token_text

mentions = static_functions(ZoneInfo("UTC"))["mentions"]


@pytest.mark.parametrize(
    ("text", "value", "expected"),
    [
        ("pay DE89 3704 0044 0532 0130 00 by Friday", "DE89370400440532013000", True),
        ("pay DE89370400440532013000", "de89 3704 0044 0532 0130 00", True),
        ("thank Sam for dinner!", "sam", True),
        ("write to sam@example.com please", "Sam@Example.com", True),
        ("pay US13 now", "US1", False),  # a prefix of an account is not the account
        ("invoice 2014", "1", False),
        ("invoice 2014", "2014", True),
        ("Samantha called", "Sam", False),
        ("anything", "", False),
        ("anything", "!!", False),
        ({"to": ["ana@x.org"]}, "ana@x.org", True),
        (["a", 42], 42, True),
        ("total 84.20 EUR", 84.2, False),  # numbers are compared as written, not as values
    ],
)
def test_mentions_matches_whole_words(text: object, value: object, expected: bool) -> None:
    assert mentions(text, value) is expected
    assert contains(token_text(text), value) is expected


def test_in_outputs_uses_the_same_rule_and_filters_by_tool() -> None:
    index = HistoryIndex(
        [Call("read_file", {"path": "bill.txt"}, "Pay 80 to DE12 3456"), Call("fetch_email", {}, "send to XX99")]
    )
    assert index.in_outputs(0, "DE123456") is True
    assert index.in_outputs(0, "DE12345") is False
    assert index.in_outputs(0, "XX99", "read_*") is False
    assert index.in_outputs(0, "XX99") is True


def test_seen_compares_whole_values_ignoring_case_and_spaces() -> None:
    index = HistoryIndex([Call("send_money", {"recipient": "DE12 3456", "amount": 5})])
    assert index.seen(0, "send_money", "recipient", "de123456") is True
    assert index.seen(0, "send_money", "recipient", "DE1234") is False
    assert index.seen(0, "send_money", "amount", 5.0) is True
    assert index.seen(0, "send_money", "amount", True) is False


def test_non_ascii_text_in_structured_values_is_found() -> None:
    assert mentions({"body": "Hallo Jürgen, bis morgen"}, "jürgen") is True
    index = HistoryIndex([Call("crm_get", {}, '{"name": "Jürgen Müller"}')])
    assert index.in_outputs(0, "Müller") is True
