"""Shared fixtures of the core test suite."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from fsa_guard import Guard

SpecWriter = Callable[..., Path]


@pytest.fixture
def write_spec(tmp_path: Path) -> SpecWriter:
    """Write a spec file into ``tmp_path`` and return its path.

    ``write_spec(text)`` writes ``spec.yaml``; ``write_spec(text, name="base.yaml")`` picks the name. The text is
    dedented, so specs can be written as indented triple-quoted strings; its line numbers are those of the
    dedented text with the leading newline removed (line 1 is the first line of text).
    """

    def write(text: str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write


@pytest.fixture
def make_guard(write_spec: SpecWriter) -> Callable[..., Guard]:
    """Build a guard from the body of a spec (``fsa_guard: 1`` is prepended); keyword options go to Guard."""

    counter = iter(range(1_000_000))

    def make(body: str, **options: object) -> Guard:
        text = "fsa_guard: 1\n" + textwrap.dedent(body).lstrip("\n")
        return Guard.from_files(write_spec(text, name=f"guard-{next(counter)}.yaml"), **options)

    return make
