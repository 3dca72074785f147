"""What the command line and the demo share when printing decisions with rich."""

from __future__ import annotations

#: The colour each outcome is printed in.
OUTCOME_COLOR = {"allow": "green", "revise": "cyan", "deny": "red", "escalate": "yellow"}


def esc(text: str) -> str:
    """``text`` with rich markup disabled (spec messages and args may contain '[')."""
    return text.replace("[", "\\[")
