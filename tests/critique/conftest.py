"""Fixtures for critic tests: a guard over ``critic_fakes.SPEC`` with an OpenAI critic."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from critic_fakes import BASE_URL, SPEC

from fsa_guard import Guard, OpenAICritic, load_spec


@pytest.fixture
def spec_path(tmp_path: Path) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC)
    return path


@pytest.fixture
def make_guard(spec_path: Path) -> Callable[..., Guard]:
    """A guard over SPEC with an OpenAI critic whose waits are recorded instead of slept."""

    def make(extra: str = "", waits: list[float] | None = None, **critic_options: Any) -> Guard:
        if extra:
            spec_path.write_text(SPEC + extra)
        recorded = waits if waits is not None else []

        async def asleep(seconds: float) -> None:
            recorded.append(seconds)

        critic = OpenAICritic(
            "gpt-4o-mini",
            base_url=BASE_URL,
            api_key="sk-test",
            retries=critic_options.pop("retries", 2),
            sleep=recorded.append,
            asleep=asleep,
            **critic_options,
        )
        return Guard(load_spec(spec_path), critic=critic)

    return make
