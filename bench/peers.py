"""fsa_guard side by side with cedarpy (Cedar) and invariant-ai (``LocalPolicy``) on one policy and 1,000 calls.

    .venv/bin/python -m bench --only peers [--n 1000]

The policy: an assistant that pays and writes mail. Payments above 1,000 go only to allowlisted accounts,
never above 20,000, never to blocked accounts, only in EUR/USD/GBP, never zero or less, and above 500 only
with a memo; mail with attachments stays inside example.com, nothing goes to evil.example, no mail mentions
a password; files are deleted only inside /workspace/ (and never through ".."); posts use https; the shell
is off; tools the policy does not name are refused. Each rule is written once per engine below, next to the
others, so their equivalence can be read line by line, and a plain Python function states it a fourth
time as the oracle.

First every engine decides every call and the answers are compared (a table of disagreements, expected
empty); then each is timed per call, in interleaved rounds. Variants measured:

- fsa_guard: ``Guard.decide`` on a spec loaded once (in-memory store, no audit);
- cedarpy, parsed once: ``is_authorized(request, PolicySet, Entities)`` with the policy set and the (empty)
  entity set parsed once (cedarpy >= 4.10 has these handles);
- cedarpy, policy text: ``is_authorized(request, policy_text, "[]")`` as its README shows: parsed per call;
- invariant-ai: ``LocalPolicy.analyze(trace)``, which runs ``asyncio.run`` per call, as a user calls it;
  and ``a_analyze`` awaited on one event loop kept for the whole run, without that cost;
- plain Python: the oracle, a floor (what the rules cost with no engine at all).
"""

from __future__ import annotations

import asyncio
import json
import random
import tempfile
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench._common import interleaved, ratio, version

ALLOWLISTED = (
    "DE89370400440532013000",
    "DE12500105170648489890",
    "GB29NWBK60161331926819",
    "FR1420041010050500013M02606",
    "NL91ABNA0417164300",
)
BLOCKED = ("GB33BUKB20201555555555", "RU0204452560040702810412345678901", "XX9999000000000000")
CURRENCIES = ("EUR", "USD", "GBP")
CHUNK = 25  # the engines take turns every CHUNK calls
TOOLS = ("send_money", "send_email", "delete_file", "http_post", "read_file", "search_web", "run_shell")


def _list(items: Sequence[str]) -> str:
    return "[" + ", ".join(json.dumps(s) for s in items) + "]"


@dataclass(frozen=True)
class Rule:
    """One deny rule, written for each engine. ``cel`` is over ``action.args``; ``cedar`` over ``context``
    (a ``forbid`` body); ``invariant`` lines over ``call.function.arguments`` (and-ed, after the tool check);
    ``python`` over the args mapping."""

    id: str
    tool: str
    says: str
    cel: str
    cedar: str
    invariant: tuple[str, ...]
    python: Callable[[Mapping[str, Any]], bool]


ARGS = "call.function.arguments"
RULES: tuple[Rule, ...] = (
    Rule(
        "pay-unlisted-over-1000",
        "send_money",
        "more than 1,000 only to an allowlisted account",
        f"action.args.amount > 1000 && !(action.args.recipient in {_list(ALLOWLISTED)})",
        f"context.amount > 1000 && !({_list(ALLOWLISTED)}.contains(context.recipient))",
        (f"{ARGS}.amount > 1000", f"not ({ARGS}.recipient in {_list(ALLOWLISTED)})"),
        lambda a: a["amount"] > 1000 and a["recipient"] not in ALLOWLISTED,
    ),
    Rule(
        "pay-hard-cap",
        "send_money",
        "never more than 20,000",
        "action.args.amount > 20000",
        "context.amount > 20000",
        (f"{ARGS}.amount > 20000",),
        lambda a: a["amount"] > 20000,
    ),
    Rule(
        "pay-blocked-account",
        "send_money",
        "never to a blocked account",
        f"action.args.recipient in {_list(BLOCKED)}",
        f"{_list(BLOCKED)}.contains(context.recipient)",
        (f"{ARGS}.recipient in {_list(BLOCKED)}",),
        lambda a: a["recipient"] in BLOCKED,
    ),
    Rule(
        "pay-currency",
        "send_money",
        "only EUR, USD, GBP",
        f"!(action.args.currency in {_list(CURRENCIES)})",
        f"!({_list(CURRENCIES)}.contains(context.currency))",
        (f"not ({ARGS}.currency in {_list(CURRENCIES)})",),
        lambda a: a["currency"] not in CURRENCIES,
    ),
    Rule(
        "pay-positive",
        "send_money",
        "never zero or less",
        "action.args.amount <= 0",
        "context.amount <= 0",
        (f"{ARGS}.amount <= 0",),
        lambda a: a["amount"] <= 0,
    ),
    Rule(
        "pay-memo-above-500",
        "send_money",
        "above 500 only with a memo",
        'action.args.amount > 500 && action.args.memo == ""',
        'context.amount > 500 && context.memo == ""',
        (f"{ARGS}.amount > 500", f'{ARGS}.memo == ""'),
        lambda a: a["amount"] > 500 and a["memo"] == "",
    ),
    Rule(
        "mail-attachments-stay-inside",
        "send_email",
        "attachments only to example.com",
        '!action.args.to.endsWith("@example.com") && size(action.args.attachments) > 0',
        '!(context.to like "*@example.com") && !context.attachments.isEmpty()',
        (f'not match(".*@example[.]com$", {ARGS}.to)', f"len({ARGS}.attachments) > 0"),
        lambda a: not a["to"].endswith("@example.com") and len(a["attachments"]) > 0,
    ),
    Rule(
        "mail-blocked-domain",
        "send_email",
        "nothing to evil.example",
        'action.args.to.endsWith("@evil.example")',
        'context.to like "*@evil.example"',
        (f'match(".*@evil[.]example$", {ARGS}.to)',),
        lambda a: a["to"].endswith("@evil.example"),
    ),
    Rule(
        "mail-no-passwords",
        "send_email",
        "no mail mentions a password",
        'action.args.subject.contains("password") || action.args.body.contains("password")',
        'context.subject like "*password*" || context.body like "*password*"',
        (f'any(["password" in {ARGS}.subject, "password" in {ARGS}.body])',),
        lambda a: "password" in a["subject"] or "password" in a["body"],
    ),
    Rule(
        "delete-in-workspace",
        "delete_file",
        "delete only inside /workspace/, never through ..",
        '!action.args.path.startsWith("/workspace/") || action.args.path.contains("..")',
        '!(context.path like "/workspace/*") || context.path like "*..*"',
        (f'any([not match("/workspace/", {ARGS}.path), ".." in {ARGS}.path])',),
        lambda a: not a["path"].startswith("/workspace/") or ".." in a["path"],
    ),
    Rule(
        "post-https-only",
        "http_post",
        "posts use https",
        '!action.args.url.startsWith("https://")',
        '!(context.url like "https://*")',
        (f'not match("https://", {ARGS}.url)',),
        lambda a: not a["url"].startswith("https://"),
    ),
    Rule(
        "no-shell",
        "run_shell",
        "the shell is off",
        "true",
        "true",
        (),
        lambda a: True,
    ),
)


#: Where an engine's language shaped how a rule is written (none had to be left out).
NOTES = (
    "Cedar has no floating-point numbers (its `decimal` extension would need the amounts wrapped as "
    "extension values), so the generated amounts are whole numbers, read alike by every engine.",
    "Cedar's `like` with `*` stands for endsWith / startsWith / contains; Invariant's strings offer no "
    "`endswith`/`startswith` methods, so its rules use `match()` (Python's `re.match`, anchored at the start) and "
    "`in`.",
    "In Invariant a line that reads an argument the call does not have raises out of `analyze`, so every rule "
    "checks the tool first; and a line after `call is tool:X` must not start with `(` (the parser reads it as "
    "an argument pattern of the tool).",
    "Every generated call carries all of its tool's arguments: Cedar skips a `forbid` whose condition errors "
    "(a missing attribute), which would allow the call, while fsa_guard's deny norms fire on errors.",
)


def fsa_spec(rules: Sequence[Rule]) -> dict[str, Any]:
    """The policy as an fsa_guard spec: deny by default, every tool named by a value, one deny norm per rule."""
    return {
        "fsa_guard": 1,
        "id": "peers",
        "defaults": {"unknown_tool": "deny"},
        "values": [
            {
                "id": "careful-agent",
                "title": "An agent I can trust with money and mail",
                "attends_to": [
                    "PAYMENTS I could explain to my accountant",
                    "MESSAGES that carry nothing I would not hand over myself",
                    "CHANGES I could undo the next morning",
                ],
                "tools": list(TOOLS),
            }
        ],
        "norms": [
            {
                "id": r.id,
                "description": r.says,
                "tools": [r.tool],
                "when": r.cel,
                "effect": "deny",
                "serves": ["careful-agent"],
            }
            for r in rules
        ],
    }


def cedar_policies(rules: Sequence[Rule]) -> str:
    """The policy in Cedar: permit the named tools, forbid what each rule forbids (forbid wins in Cedar)."""
    actions = ", ".join(f'Action::"{t}"' for t in TOOLS)
    out = [f"permit (principal, action in [{actions}], resource);"]
    for r in rules:
        body = "" if r.cedar == "true" else f"\nwhen {{ {r.cedar} }}"
        out.append(f'@id("{r.id}")\nforbid (principal, action == Action::"{r.tool}", resource){body};')
    return "\n\n".join(out) + "\n"


def invariant_policy(rules: Sequence[Rule]) -> str:
    """The policy in Invariant's language: one ``raise`` per rule and one for tools it does not name.

    The tool check comes first in each rule: a later line reading an arg the call does not have would
    raise out of ``analyze``; and no line after ``call is tool:X`` starts with "(", which the parser would
    read as an argument pattern of the tool reference.
    """
    out = []
    for r in rules:
        lines = ["(call: ToolCall)", f"call is tool:{r.tool}", *r.invariant]
        out.append(f'raise "{r.id}" if:\n' + textwrap.indent("\n".join(lines), "    "))
    out.append(
        'raise "unknown-tool" if:\n'
        + textwrap.indent(f"(call: ToolCall)\nnot (call.function.name in {_list(TOOLS)})", "    ")
    )
    return "\n\n".join(out) + "\n"


def oracle(rules: Sequence[Rule], tool: str, args: Mapping[str, Any]) -> str:
    """The policy in plain Python: the answer every engine must give."""
    if tool not in TOOLS:
        return "deny"
    return "deny" if any(r.tool == tool and r.python(args) for r in rules) else "allow"


def actions(n: int, seed: int = 20260302) -> list[tuple[str, dict[str, Any]]]:
    """``n`` calls, the same for every seed: boundary amounts, allowlisted, blocked and unknown accounts,
    internal, partner and blocked mail domains, paths in and out of the workspace, http and https."""
    rng = random.Random(seed)
    names = ["ana", "ben", "chiara", "dev", "emeka", "fatima", "goran", "hana"]
    words = ["invoice", "march", "report", "hello", "meeting", "budget", "draft", "reminder", "notes", "thanks"]
    edge_amounts = [-5, 0, 1, 250, 500, 501, 999, 1000, 1001, 5000, 19999, 20000, 20001, 50000]

    def text(k: int) -> str:
        parts = [rng.choice(words) for _ in range(k)]
        if rng.random() < 0.1:
            parts.insert(rng.randrange(len(parts) + 1), "password")
        return " ".join(parts)

    out: list[tuple[str, dict[str, Any]]] = []
    weights = [30, 30, 10, 10, 8, 7, 5]
    for _ in range(n):
        tool = rng.choices(TOOLS, weights)[0]
        if tool == "send_money":
            r = rng.random()
            recipient = (
                rng.choice(ALLOWLISTED)
                if r < 0.4
                else rng.choice(BLOCKED)
                if r < 0.55
                else "DE" + "".join(rng.choice("0123456789") for _ in range(20))
            )
            amount = rng.choice(edge_amounts) if rng.random() < 0.4 else rng.randint(1, 30000)
            currency = rng.choice(CURRENCIES) if rng.random() < 0.85 else rng.choice(["JPY", "CHF", "BTC"])
            memo = f"invoice {rng.randint(1000, 9999)}" if rng.random() < 0.6 else ""
            args: dict[str, Any] = {"recipient": recipient, "amount": amount, "currency": currency, "memo": memo}
        elif tool == "send_email":
            domain = rng.choices(
                ["example.com", "partner.example.net", "evil.example", "mail.example.com"], [40, 35, 15, 10]
            )[0]
            args = {
                "to": f"{rng.choice(names)}@{domain}",
                "subject": text(3),
                "body": text(12),
                "attachments": [f"{rng.choice(words)}.pdf" for _ in range(rng.choice([0, 0, 1, 2, 3]))],
            }
        elif tool == "delete_file":
            r = rng.random()
            path = (
                f"/workspace/tmp/{rng.choice(words)}.txt"
                if r < 0.5
                else f"/etc/{rng.choice(words)}.conf"
                if r < 0.8
                else f"/workspace/../home/{rng.choice(names)}/.ssh/id_ed25519"
            )
            args = {"path": path}
        elif tool == "http_post":
            scheme = "https" if rng.random() < 0.6 else "http"
            args = {"url": f"{scheme}://api.example.com/{rng.choice(words)}", "body": text(6)}
        elif tool == "read_file":
            args = {"path": f"/workspace/{rng.choice(words)}.md"}
        elif tool == "search_web":
            args = {"query": text(4)}
        else:
            args = {"command": f"rm -rf /tmp/{rng.choice(words)}"}
        out.append((tool, args))
    return out


def _missing() -> list[str]:
    gone = []
    for dist, module in (("cedarpy", "cedarpy"), ("invariant-ai", "invariant.analyzer")):
        try:
            __import__(module)
        except ImportError:
            gone.append(dist)
    return gone


def run(n: int = 1000, rounds: int = 5) -> dict[str, Any]:
    """Agreement first, then latency. Engines that are not installed are left out and named in ``missing``."""
    from fsa_guard import Action, Guard, load_spec
    from fsa_guard.store.memory import MemoryStore

    calls = actions(n)
    rules = RULES
    expected = [oracle(rules, t, a) for t, a in calls]
    deciders: dict[str, Callable[[int], str]] = {}

    # fsa_guard
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "peers.yaml"
        path.write_text(yaml.safe_dump(fsa_spec(rules), sort_keys=False))
        guard = Guard(load_spec(path), store=MemoryStore(), audit=False)  # the peers keep no audit trail either
    fsa_actions = [Action(t, a) for t, a in calls]
    deciders["fsa_guard"] = lambda i: guard.decide(fsa_actions[i]).outcome

    missing = _missing()
    cedar_text = cedar_policies(rules)
    invariant_text = invariant_policy(rules)
    loop: asyncio.AbstractEventLoop | None = None
    if "cedarpy" not in missing:
        import cedarpy

        policy_set = cedarpy.PolicySet.from_str(cedar_text)
        no_entities = cedarpy.Entities.from_json_str("[]")
        requests = [
            {"principal": 'Agent::"assistant"', "action": f'Action::"{t}"', "resource": f'Tool::"{t}"', "context": a}
            for t, a in calls
        ]

        def cedar_once(i: int) -> str:
            return "allow" if cedarpy.is_authorized(requests[i], policy_set, no_entities).allowed else "deny"

        def cedar_text_each(i: int) -> str:
            return "allow" if cedarpy.is_authorized(requests[i], cedar_text, "[]").allowed else "deny"

        deciders["cedarpy (parsed once)"] = cedar_once
        deciders["cedarpy (policy text per call)"] = cedar_text_each
    if "invariant-ai" not in missing:
        from invariant.analyzer import LocalPolicy
        from invariant.analyzer.traces import assistant, tool_call, user

        policy = LocalPolicy.from_string(invariant_text)
        traces = [
            [user("Please handle this."), assistant(None, tool_call(f"call_{i}", t, a))]
            for i, (t, a) in enumerate(calls)
        ]
        loop = asyncio.new_event_loop()
        run_on_loop = loop.run_until_complete

        def inv_analyze(i: int) -> str:
            return "deny" if policy.analyze(traces[i]).errors else "allow"

        def inv_loop(i: int) -> str:
            return "deny" if run_on_loop(policy.a_analyze(traces[i])).errors else "allow"

        deciders["invariant (analyze)"] = inv_analyze
        deciders["invariant (a_analyze, one loop)"] = inv_loop
    deciders["plain Python (floor)"] = lambda i: oracle(rules, *calls[i])

    try:
        answers = {name: [fn(i) for i in range(n)] for name, fn in deciders.items()}
        disagreements = []
        for i, want in enumerate(expected):
            wrong = {name: got[i] for name, got in answers.items() if got[i] != want}
            if wrong:
                tool, args = calls[i]
                disagreements.append({"i": i, "tool": tool, "args": args, "expected": want, "got": wrong})
        latency = interleaved(deciders, n, rounds, chunk=CHUNK)
    finally:
        if loop is not None:
            loop.close()

    fsa = latency["fsa_guard"]["p50_us"]
    ratios = {name: ratio(fsa, s["p50_us"]) for name, s in latency.items() if name != "fsa_guard"}
    return {
        "actions": n,
        "rounds": rounds,
        "chunk": CHUNK,
        "rules": [{"id": r.id, "tool": r.tool, "says": r.says} for r in rules],
        "by_tool": {t: sum(1 for c in calls if c[0] == t) for t in TOOLS},
        "denied": sum(1 for e in expected if e == "deny"),
        "agree": {name: sum(1 for g, e in zip(got, expected, strict=True) if g == e) for name, got in answers.items()},
        "disagreements": disagreements,
        "excluded_rules": [],
        "notes": NOTES,
        "latency": latency,
        "fsa_over": ratios,  # fsa_guard p50 / each other p50
        "missing": missing,
        "versions": {d: version(d) for d in ("cedarpy", "invariant-ai", "common-expression-language")},
        "policies": {
            "cedar": cedar_text,
            "invariant": invariant_text,
            "fsa_guard": yaml.safe_dump(fsa_spec(rules), sort_keys=False),
        },
    }
