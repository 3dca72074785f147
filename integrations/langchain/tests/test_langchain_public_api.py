"""The integration's public API: ``fsa_guard_langchain.__all__`` lists every public name, sorted, each documented."""

from __future__ import annotations

import types

import fsa_guard_langchain


def ruff_order(name: str) -> tuple[int, str]:
    """How ruff (RUF022) sorts ``__all__``: CONSTANTS, then Classes, then everything else."""
    if name.isupper():
        return (0, name)
    if name[0].isupper():
        return (1, name)
    return (2, name)


def test_all_lists_every_public_name_sorted():
    public = {
        name
        for name, value in vars(fsa_guard_langchain).items()
        if not isinstance(value, types.ModuleType) and (not name.startswith("_") or name == "__version__")
    }
    assert set(fsa_guard_langchain.__all__) == public
    assert fsa_guard_langchain.__all__ == sorted(fsa_guard_langchain.__all__, key=ruff_order)


def test_every_public_function_and_class_has_a_docstring():
    for name in fsa_guard_langchain.__all__:
        value = getattr(fsa_guard_langchain, name)
        if callable(value):
            assert (value.__doc__ or "").strip(), name
