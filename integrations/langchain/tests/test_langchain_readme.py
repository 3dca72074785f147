"""The README's LangChain example works as written (with the model mocked, and the tools and the person
supplied by the test)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from langchain_core.tools import tool
from lc_fakes import API, calls, says, sent, tool_messages

ROOT = Path(__file__).resolve().parents[3]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_langchain_example_runs(httpx2_mock, monkeypatch):
    block = re.search(r"### LangChain.*?```python\n(.*?)```", README, re.S)
    assert block, "the README's LangChain example is missing"
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    ran: list[tuple[str, dict[str, Any]]] = []
    asked: list[dict[str, Any]] = []

    @tool
    def read_email(subject: str) -> str:
        """Read an email."""
        ran.append(("read_email", {"subject": subject}))
        return json.dumps({"subject": subject, "body": "Pay 84.20 to DE44500105175407324931."})

    @tool
    def send_money(recipient: str, amount: float) -> str:
        """Send money."""
        ran.append(("send_money", {"recipient": recipient, "amount": amount}))
        return "sent"

    @tool
    def send_email(to: str, subject: str, body: str) -> str:
        """Send an email."""
        ran.append(("send_email", {"to": to}))
        return "sent"

    def ask_the_person(payload: dict[str, Any]) -> str:
        asked.append(payload)
        return "deny"

    model = httpx2_mock.post(API).mock(
        side_effect=[
            calls(("c1", "read_email", {"subject": "March electricity bill"})),
            calls(("c2", "send_money", {"recipient": "DE44500105175407324931", "amount": 84.2})),
            calls(("c3", "send_email", {"to": "stranger@example.org", "subject": "Paid", "body": "Done."})),
            says("Paid the bill; you did not want the email sent."),
        ]
    )
    namespace: dict[str, Any] = {
        "read_email": read_email,
        "send_money": send_money,
        "send_email": send_email,
        "ask_the_person": ask_the_person,
    }
    exec(block.group(1), namespace)

    assert [name for name, _ in ran] == ["read_email", "send_money"]
    assert [p["action"]["tool"] for p in asked] == ["send_email"]
    assert tool_messages(sent(model))["c3"].startswith("Refused by the guard")
    assert namespace["result"]["messages"][-1].content.startswith("Paid the bill")
