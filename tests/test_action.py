"""Actions written out and read back, as approval queues and integrations that pause a run keep them."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from fsa_guard import Action, Call


def test_a_full_action_round_trips_through_json() -> None:
    action = Action(
        "send_money",
        {"recipient": "landlord", "amount": 900.5, "tags": ["rent"]},
        request="pay the rent",
        history=(Call("read_email", {"subject": "rent"}, "900.50 to landlord"), {"tool": "x", "args": {}}),
        context={"user": "alice"},
        now=datetime(2026, 3, 2, 10, 0, tzinfo=UTC),
        id="call_1",
    )
    back = Action.from_dict(json.loads(json.dumps(action.to_dict(full=True))))
    assert back == Action(
        "send_money",
        {"recipient": "landlord", "amount": 900.5, "tags": ["rent"]},
        "pay the rent",
        (Call("read_email", {"subject": "rent"}, "900.50 to landlord"), Call("x", {}, None)),
        {"user": "alice"},
        datetime(2026, 3, 2, 10, 0, tzinfo=UTC),
        "call_1",
    )


def test_the_short_form_is_the_call_only_and_survives_malformed_args() -> None:
    assert Action("t", {"a": 1}, request="r").to_dict() == {"tool": "t", "args": {"a": 1}}
    assert Action("t", ["not", "a", "mapping"]).to_dict() == {  # type: ignore[arg-type]
        "tool": "t",
        "args": {"<malformed>": ["not", "a", "mapping"]},
    }
    assert Action.from_dict({"tool": "t"}) == Action("t")
