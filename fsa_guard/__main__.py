"""``python -m fsa_guard``: the ``fsa-guard`` command line."""

from .cli import main

main()
