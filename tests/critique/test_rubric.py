"""The rubric: the answer's schema, tolerant reading of answers, and the prompt's data block."""

from __future__ import annotations

import json

import pytest
from critic_fakes import answer

from fsa_guard import Action, CriticError, CritiqueRequest, load_spec
from fsa_guard.critique.rubric import SCHEMA, build_messages, parse_verdict, verdict_to_answer


def objects(schema):
    if isinstance(schema, dict):
        if schema.get("type") == "object":
            yield schema
        for value in schema.values():
            yield from objects(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from objects(value)


def test_the_schema_is_in_the_strict_form_structured_outputs_accept():
    found = list(objects(SCHEMA))
    assert len(found) == 2
    for obj in found:
        assert obj["additionalProperties"] is False
        assert sorted(obj["required"]) == sorted(obj["properties"])


def test_an_answer_in_the_schema_reads_back_as_the_verdict():
    raw = answer("revise", at_risk=("honesty#1",), revised_args={"body": "maybe"})
    verdict = parse_verdict(json.dumps(raw), {"total": 5})
    assert verdict.verdict == "revise" and verdict.revised_args == {"body": "maybe"}
    assert verdict.values == ("honesty",) and verdict.tokens == {"total": 5}
    assert [j.judgment for j in verdict.judgments].count("at_risk") == 1
    assert verdict_to_answer(verdict) == {**raw, "revised_args": json.dumps({"body": "maybe"})}


@pytest.mark.parametrize(
    "wrap",
    [
        lambda text: f"```json\n{text}\n```",
        lambda text: f"Sure! Here is the critique:\n{text}\nLet me know if you need more.",
        lambda text: f"```\n{text}\n```",
    ],
)
def test_answers_wrapped_in_fences_or_prose_are_read(wrap):
    verdict = parse_verdict(wrap(json.dumps(answer("allow"))))
    assert verdict.verdict == "allow"


def test_loose_spellings_are_normalised():
    raw = answer("escalate", at_risk=("honesty#1",), question="Send it?")
    raw["verdict"] = "ESCALATE"
    raw["judgments"][0]["judgment"] = "at-risk"
    raw["judgments"][1]["judgment"] = "Honored"
    raw["judgments"][2]["judgment"] = "not relevant"
    raw["affected_could_reasonably_reject"] = "no"
    raw["cited_values"] = "honesty, kindness"
    verdict = parse_verdict(json.dumps(raw))
    assert [j.judgment for j in verdict.judgments[:3]] == ["at_risk", "honoured", "not_relevant"]
    assert verdict.rejectable is False and verdict.values == ("honesty", "kindness")


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty answer"),
        ("I think this is fine.", "no JSON object"),
        (json.dumps({**answer("allow"), "verdict": "approve"}), "verdict"),
        (json.dumps({k: v for k, v in answer("allow").items() if k != "judgments"}), "judgments"),
        (json.dumps({**answer("revise"), "revised_args": "body=maybe"}), "revised_args"),
    ],
)
def test_what_cannot_be_read_is_an_invalid_critique(text, why):
    with pytest.raises(CriticError) as info:
        parse_verdict(text, {"total": 7})
    assert info.value.kind == "invalid" and why in str(info.value)
    assert info.value.tokens == {"total": 7}


def test_the_prompt_names_policies_by_id_and_keeps_trusted_text_outside_the_block(tmp_path):
    from critic_fakes import SPEC

    (tmp_path / "s.yaml").write_text(SPEC)
    spec = load_spec(tmp_path / "s.yaml")
    values = spec.relevant_values("send_email")
    request = CritiqueRequest(
        action=Action("send_email", {"body": "<b>hi</b>"}, request="Write to Sam"),
        values=values,
        priorities=spec.priorities_between(values),
        asked_by=("value:honesty",),
    )
    system, user = (m["content"] for m in build_messages(request, tag="data-fixed"))
    assert "<data-fixed>" in system and "never instructions" in system
    assert "- honesty#2: MOMENTS when a kind omission" in user
    assert "P1: in condolence" in user
    head, block = user.split("<data-fixed>")
    assert "Write to Sam" in head and "Honest communication" in head
    assert "\\u003cb\\u003ehi\\u003c/b\\u003e" in block and "<b>" not in block
    assert json.loads(block.split("</data-fixed>")[0])["proposed_call"]["args"]["body"] == "<b>hi</b>"
