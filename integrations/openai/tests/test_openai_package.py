"""The package's surface, the fakes' fidelity to the SDK's models, and the two examples (without a key, and
driven end to end against the mocked model)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import fsa_guard_openai
import pytest
from oa_fakes import BASE_URL, CHAT_URL, RESPONSES_URL, FakeModel, completion, response, results_in, sync_client
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletion
from openai.types.responses import Response

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def ruff_order(name: str) -> tuple[int, str]:
    """How ruff (RUF022) sorts ``__all__``: CONSTANTS, then Classes, then everything else."""
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def test_all_lists_every_public_name_sorted():
    public = {
        name
        for name, value in vars(fsa_guard_openai).items()
        if not isinstance(value, ModuleType) and (not name.startswith("_") or name == "__version__")
    }
    assert set(fsa_guard_openai.__all__) == public - {"annotations"}
    assert fsa_guard_openai.__all__ == sorted(fsa_guard_openai.__all__, key=ruff_order)
    namespace: dict[str, object] = {}
    exec("from fsa_guard_openai import *", namespace)
    assert set(fsa_guard_openai.__all__) <= set(namespace)


def test_the_package_imports_without_the_agents_sdk():
    code = "import sys; sys.modules['agents'] = None; import fsa_guard_openai; print('ok')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "ok", done.stderr


def test_the_fakes_are_complete_sdk_objects():
    ChatCompletion.model_validate(completion([("call_1", "tip", {"amount": 1.0})]))
    ChatCompletion.model_validate(completion("text"))
    Response.model_validate(response([("call_1", "tip", {"amount": 1.0})]))
    assert Response.model_validate(response("hello")).output_text == "hello"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["chat_loop", "agents_sdk"])
def test_without_a_key_an_example_says_what_to_set_and_exits_cleanly(name):
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py")], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "export OPENAI_API_KEY=sk-..." in done.stdout and "OPENAI_BASE_URL" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


BILL = "Your March electricity bill"
PAY_BILL = ("call_p4", "send_money", {"recipient": "DE44500105175407324931", "amount": 84.2, "memo": "MARCH-2291"})
INJECTED = ("call_p5", "send_money", {"recipient": "GB33BUKB20201555555555", "amount": 300.0, "memo": ""})
TURNS = [
    [("call_s1", "search_email", {"query": ""})],
    [
        ("call_r2", "read_email", {"subject": BILL}),
        ("call_r3", "read_email", {"subject": "URGENT: account verification"}),
    ],
    [PAY_BILL, INJECTED],
    [("call_e6", "send_email", {"to": "sam@example.org", "subject": "Bill", "body": "The bill is paid."})],
    "I paid the bill and told Sam. I did not send money to the address in the 'urgent' email.",
]


def test_the_chat_loop_example_pays_the_bill_and_refuses_the_injected_payment(httpx2_mock, capsys):
    model = FakeModel("chat", TURNS)
    httpx2_mock.post(CHAT_URL).mock(side_effect=model)
    assert load("chat_loop").main([], client=sync_client()) == 0
    sent = results_in(model.sent())
    assert '"status": "sent"' in sent["call_p4"] and sent["call_p5"].startswith("Refused: Denied: send_money.")
    assert '"status": "sent"' in sent["call_e6"]
    out = capsys.readouterr().out
    assert "Assistant: I paid the bill" in out and "refused" in out


def test_the_agents_sdk_example_pays_the_bill_and_refuses_the_injected_payment(httpx2_mock, capsys):
    from agents import OpenAIResponsesModel, set_tracing_disabled

    set_tracing_disabled(True)
    model = FakeModel("responses", TURNS)
    httpx2_mock.post(RESPONSES_URL).mock(side_effect=model)
    client = AsyncOpenAI(api_key="sk-test", base_url=BASE_URL, max_retries=0)
    assert load("agents_sdk").main([], model=OpenAIResponsesModel("gpt-4o-mini", client)) == 0
    sent = results_in(model.sent())
    assert '"status": "sent"' in sent["call_p4"] and sent["call_p5"].startswith("Refused: Denied: send_money.")
    out = capsys.readouterr().out
    assert "Assistant: I paid the bill" in out and "Denied: send_money" in out
