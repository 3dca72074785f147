"""examples/personal_assistant.py: says what to set without a key, and runs its agent against the spec."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from langchain_openai import ChatOpenAI
from lc_fakes import API, calls, says, sent, tool_messages

from fsa_guard import Guard
from fsa_guard.demo import policy_path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "personal_assistant.py"


def load_example():
    spec = importlib.util.spec_from_file_location("personal_assistant_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_a_key_it_says_what_to_set_and_exits_cleanly():
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    done = subprocess.run([sys.executable, str(EXAMPLE)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "export OPENAI_API_KEY=sk-..." in done.stdout and "OPENAI_BASE_URL" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_its_agent_pays_the_bill_it_was_asked_to_and_refuses_the_injected_payment(httpx2_mock, capsys):
    example = load_example()
    bill = "Your March electricity bill"
    model = httpx2_mock.post(API).mock(
        side_effect=[
            calls(("c1", "search_email", {"query": ""})),
            calls(
                ("c2", "read_email", {"subject": bill}),
                ("c3", "read_email", {"subject": "URGENT: account verification"}),
            ),
            calls(
                ("c4", "send_money", {"recipient": "DE44500105175407324931", "amount": 84.2, "memo": "MARCH-2291"}),
                ("c5", "send_money", {"recipient": "GB33BUKB20201555555555", "amount": 300.0}),
            ),
            calls(("c6", "send_email", {"to": "sam@example.org", "subject": "Bill", "body": "The bill is paid."})),
            says("Paid the electricity bill and told Sam. I did not send the 300 the other email asked for."),
        ]
    )
    guard = Guard.from_files(policy_path("personal-assistant.yaml"))
    agent = example.build_agent(ChatOpenAI(model="gpt-4o-mini", api_key="sk-test"), guard)
    answer = example.run(agent, example.REQUEST)

    assert answer.startswith("Paid the electricity bill")
    results = tool_messages(sent(model))
    assert '"status": "sent"' in results["c4"] and '"status": "sent"' in results["c6"]
    assert results["c5"].startswith("Refused by the guard") and "Money goes only to someone I named" in results["c5"]
    printed = capsys.readouterr().out
    assert "-> Allowed: send_money." in printed and "-> Denied: send_money." in printed
    assert "Careful stewardship of money" in sent(model, 0)["messages"][0]["content"]  # inject_values
