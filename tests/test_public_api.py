"""The public API: ``fsa_guard.__all__`` lists every public name, sorted, and each one imports."""

from __future__ import annotations

import importlib
import types

import fsa_guard


def ruff_order(name: str) -> tuple[int, str]:
    """How ruff (RUF022) sorts ``__all__``: CONSTANTS, then Classes, then everything else."""
    if name.isupper():
        return (0, name)
    if name[0].isupper():
        return (1, name)
    return (2, name)


def test_all_lists_every_public_name():
    public = {
        name
        for name, value in vars(fsa_guard).items()
        if not isinstance(value, types.ModuleType) and (not name.startswith("_") or name == "__version__")
    }
    public |= set(fsa_guard._LAZY)  # imported on first use
    assert set(fsa_guard.__all__) == public


def test_all_is_sorted_and_has_no_duplicates():
    assert fsa_guard.__all__ == sorted(fsa_guard.__all__, key=ruff_order)
    assert len(set(fsa_guard.__all__)) == len(fsa_guard.__all__)


def test_every_public_name_imports():
    namespace: dict[str, object] = {}
    exec("from fsa_guard import *", namespace)
    for name in fsa_guard.__all__:
        assert name in namespace, name
        value = getattr(importlib.import_module("fsa_guard"), name)
        module = getattr(value, "__module__", None)
        if isinstance(value, type | types.FunctionType):  # not aliases such as Outcome = Literal[...]
            assert module is not None and module.startswith("fsa_guard"), (name, module)


def test_the_names_integrations_rely_on():
    for name in ("Guard", "Action", "Call", "Decision", "Finding", "Denied", "EscalationRequired", "SpecError"):
        assert name in fsa_guard.__all__
    assert issubclass(fsa_guard.EscalationRequired, fsa_guard.Denied)
    for error in ("SpecError", "StoreError", "AuditError", "CriticError", "ApprovalError", "Denied"):
        assert issubclass(getattr(fsa_guard, error), fsa_guard.FSAGuardError)
    assert isinstance(fsa_guard.__version__, str) and fsa_guard.__version__
