"""What the command line and the demo share when printing decisions with rich."""

from __future__ import annotations

import re

#: The colour each outcome is printed in.
OUTCOME_COLOR = {"allow": "green", "revise": "cyan", "deny": "red", "escalate": "yellow"}


# control characters but newline and tab: an escape sequence in an agent's args could move the cursor and
# overwrite what the terminal shows (a DENY line redrawn as ALLOW)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


_BRACKET = re.compile(r"(\\*)\[")


def esc(text: str) -> str:
    """``text`` to print as it is: rich markup disabled (spec messages and args may contain '['), and control
    characters shown as escapes (``\\x1b``) instead of acting on the terminal."""
    shown = _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)
    # backslashes before a '[' are doubled so they stay text; a backslash at the end would escape the tag the
    # caller puts after the text (or show doubled where none follows), so a zero-width space comes after it
    shown = _BRACKET.sub(lambda m: m.group(1) * 2 + "\\[", shown)
    return shown + "\u200b" if shown.endswith("\\") else shown
