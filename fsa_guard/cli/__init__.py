"""The ``fsa-guard`` command line: check an action, lint a spec, print the spec's JSON Schema, run the demo,
read or verify an audit trail (``fsa-guard audit verify|show|tail URL``), answer queued escalations
(``fsa-guard approvals list|show|approve|deny|edit``), and measure decisions (``fsa-guard eval``).

Exit codes (every command): 0 success (for ``check``: allow or revise), 1 for ``check`` a deny and for
``lint`` a spec with errors, 2 invalid or unreadable input (the message names file, line and key), 3 for
``check`` an escalation; ``eval --strict`` exits 1 when a scenario is not decided as labelled.
"""

from __future__ import annotations

from . import approvals, audit, commands, evaluate  # noqa: F401  (each registers its commands on the app)
from ._app import EXIT_DENY, EXIT_ESCALATE, EXIT_INPUT, EXIT_OK, app

__all__ = ["EXIT_DENY", "EXIT_ESCALATE", "EXIT_INPUT", "EXIT_OK", "app", "main"]


def main() -> None:
    """Console entry point."""
    app()
