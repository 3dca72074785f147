"""Text containment and equality used by data-flow norms: whole words, not substrings."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from fsa_guard.action import Action, Call
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
        # compatibility forms fold (NFKC): a value cannot hide from a check in fullwidth letters, nor the reverse
        ("the password is ｈｕｎｔｅｒ２", "hunter2", True),
        ("pay DE89 3704", "ＤＥ８９３７０４", True),
        ("Straße 5", "STRASSE 5", True),
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


HOST = static_functions(ZoneInfo("UTC"))["host"]
IN_DOMAIN = static_functions(ZoneInfo("UTC"))["in_domain"]
GLOB = static_functions(ZoneInfo("UTC"))["glob"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://api.Example.com:8443/v1/upload?x=1", "api.example.com"),
        ("https://intranet.example.com@evil.net/steal", "evil.net"),  # data goes after the '@'
        ("http://[::1]:8080/", "::1"),
        ("//evil.net/x", "evil.net"),
        ("kim@Partner.Example.NET", "partner.example.net"),
        ("Kim <kim@partner.example.net>", "partner.example.net"),
        ('"Doe, Jane" <jane@example.com>', "example.com"),
        ("mailto:kim@example.com?subject=hi", "example.com"),
        ("example.com", "example.com"),
        ("EXAMPLE.COM.", "example.com"),
        ("evil.net/?r=https://example.com", "evil.net"),  # no scheme: the host comes first
        (42, ""),
    ],
)
def test_host(value: object, expected: str) -> None:
    assert HOST(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "https://evil.net\\@intranet.example.com/",  # a browser goes to evil.net, httpx to intranet.example.com
        "https://example.com\\@evil.net/in",  # and the other way round
        "https:evil.net/?x=https://example.com",  # a browser's host is evil.net; urllib sees a path
        "https:/evil.net?x=https://example.com",
        "HTTPS:evil.net#://example.com",
        "https://%65vil.net/",
        "https://ex ample.com/",
        "evil@evil.net, boss@example.com",  # a mail library sends to both
        "evil@evil.net <boss@example.com>",
        "evil@evil.net@example.com",
        "Evil <evil@evil.net>, Boss <boss@example.com>",
        "evil@evil.net\nboss@example.com",
        "boss@example.com\u200b",
    ],
)
def test_text_that_libraries_read_two_ways_has_no_host_and_is_in_no_domain(value: str) -> None:
    # an allowlist (in_domain(x, ours)) then refuses it: before, each of these read as example.com or intranet
    assert HOST(value) == ""
    assert IN_DOMAIN(value, ["example.com", "intranet.example.com", "evil.net"]) is False


def test_in_domain_counts_subdomains_but_not_lookalikes() -> None:
    assert IN_DOMAIN("ana@mail.example.com", ["example.com"]) is True
    assert IN_DOMAIN("https://example.com/x", "example.com") is True
    assert IN_DOMAIN("ana@notexample.com", ["example.com"]) is False
    assert IN_DOMAIN("ana@example.com.evil.net", ["example.com"]) is False
    assert IN_DOMAIN("", ["example.com"]) is False


def test_copied_from_finds_runs_of_whole_words() -> None:
    index = HistoryIndex(
        [
            Call("read_file", {"path": "q3.txt"}, "Revenue projection: 4.2M EUR, down 8% against plan. Confidential."),
            Call("web_fetch", {}, "public weather report for Berlin tomorrow"),
        ]
    )
    assert index.copied_from(0, "FYI: revenue projection 4.2M EUR down 8%", "read_file") is True
    assert index.copied_from(0, ["Thursday", "revenue projection 4.2M"], ["crm_*", "read_*"]) is True
    assert index.copied_from(0, "our revenue is fine", "read_file") is False  # too short a run
    assert index.copied_from(0, "weather report for Berlin tomorrow", "read_file") is False  # other tool
    assert index.copied_from(0, "weather report for Berlin tomorrow", "web_*") is True
    assert index.copied_from(0, "revenue", "read_file", 5) is True


def test_fields_in_finds_record_values_in_outgoing_text() -> None:
    index = HistoryIndex(
        [
            Call("crm_get", {"id": 7}, {"name": "Jürgen Müller", "iban": "DE44 5001 0517", "tier": "gold"}),
            Call("read_file", {}, "Jürgen Müller"),  # text outputs have no fields
        ]
    )
    assert index.fields_in(0, "Hi, attached are the details of jürgen müller.", "crm_*") is True
    assert index.fields_in(0, {"body": "account DE4450010517"}, "crm_get") is True
    assert index.fields_in(0, "our gold tier customers", "crm_get") is False  # 'gold' is under 6 characters
    assert index.fields_in(0, "Jürgen Müller", "read_file") is False


def test_in_outputs_filters_by_args() -> None:
    index = HistoryIndex(
        [
            Call("erp_get_invoice", {"id": "INV-1"}, {"account": "DE11"}),
            Call("erp_get_invoice", {"id": "INV-2"}, {"account": "DE22"}),
        ]
    )
    assert index.in_outputs(0, "DE22", "erp_get_invoice", {"id": "INV-2"}) is True
    assert index.in_outputs(0, "DE22", "erp_get_invoice", {"id": "INV-1"}) is False


PATTERNS = [
    r"(?i)^\s*(select|with|show|explain)\b",
    r";\s*\S",
    r"^[A-Z]{2}[0-9]{2}",
    r"\d{4}-\d{2}-\d{2}",
    r"(?i)password|secret",
    r"^https?://",
    r"\bMüller\b",
    r"^$",
    r"^[a-z]+$",
]
TEXTS = [
    "SELECT * FROM t",
    "select 1; drop table x",
    "DE89 3704",
    "due 2026-03-05",
    "my Secret",
    "http://x",
    "Jürgen Müller",
    "",
    "abc\n",
]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_cached_regex_agrees_with_cels_matches(pattern: str) -> None:
    import cel

    from fsa_guard.verify.expr import compile_expr
    from fsa_guard.verify.functions import regex_search

    native = cel.compile("text.matches(pattern)")
    compiled = compile_expr(f"action.args.text.matches({pattern!r})")
    # a literal pattern moves to the cached regex; '$' is written \Z there (Python's '$' also matches before
    # a final newline, the package's does not)
    assert "fsa_matches" in compiled.functions
    for text in TEXTS:
        assert regex_search(text, pattern) == native.execute({"text": text, "pattern": pattern}), text


def test_a_dollar_anchor_keeps_cels_meaning(make_guard) -> None:
    g = make_guard(
        """
        norms:
          - id: lowercase-names-only
            tools: [t]
            when: '!action.args.name.matches("^[a-z]+$")'
            effect: deny
        """
    )
    assert g.decide(Action("t", {"name": "abc"})).outcome == "allow"
    assert g.decide(Action("t", {"name": "abc\n"})).outcome == "deny"


def test_output_field_reads_one_field_of_the_latest_matching_output() -> None:
    index = HistoryIndex(
        [
            Call("erp_get_invoice", {"id": "INV-1"}, {"amount": 10.0, "total": {"net": 8.0}}),
            Call("erp_get_invoice", {"id": "INV-2"}, '{"amount": 20.0}'),
        ]
    )
    assert index.output_field(0, "erp_get_invoice", "amount") == 20.0
    assert index.output_field(0, "erp_get_invoice", "amount", {"id": "INV-1"}) == 10.0
    assert index.output_field(0, "erp_get_invoice", "total.net", {"id": "INV-1"}) == 8.0
    assert index.output_field(0, "erp_get_invoice", "missing") is None
    assert index.output_field(0, "other", "amount") is None


@pytest.mark.parametrize("python", [True, False], ids=["python", "cel-package"])
@pytest.mark.parametrize(
    ("path", "outcome"),
    [
        ("/workspace/notes.txt", "allow"),
        ("/workspace/a/b/c.txt", "allow"),  # '*' crosses '/': the folder and everything under it
        ("/workspace/..", "deny"),
        ("/workspace/../etc/passwd", "deny"),  # '*' would match it: a '..' segment climbs out
        ("/workspace/x/../../home/u/.ssh/id_rsa", "deny"),
        ("/workspace/..\\..\\etc", "deny"),
        ("/workspace/a..b.txt", "allow"),  # two dots inside a name are no segment
        ("/etc/passwd", "deny"),
    ],
)
def test_glob_confines_paths_to_a_folder_as_the_readme_writes_it(make_guard, monkeypatch, python, path, outcome):
    from fsa_guard.verify import engine

    monkeypatch.setattr(engine, "PYTHON_EVAL", python)
    g = make_guard(
        """
        norms:
          - id: only-the-workspace
            tools: [delete_file]
            when: '!glob(action.args.path, "/workspace/*")'
            effect: deny
        """
    )
    assert g.decide(Action("delete_file", {"path": path})).outcome == outcome
    assert GLOB("/workspace/../x", "/workspace/../*") is True  # a pattern that says '..' itself still matches


def test_letters_counts_what_mentions_compares() -> None:
    letters = static_functions(ZoneInfo("UTC"))["letters"]
    assert letters("DE89 3704-0044") == 12
    assert letters("rent\u200b\u200b  ") == 4  # padding adds nothing
    assert letters("Zoë Ng") == 5 and letters(2024) == 4 and letters("") == 0
