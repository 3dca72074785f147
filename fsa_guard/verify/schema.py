"""Argument schemas: a tool's JSON Schema, given directly or derived from a Python signature."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, Literal

import jsonschema
from pydantic import ConfigDict, create_model

__all__ = ["ArgsValidator", "call_args", "schema_from_signature"]


class ArgsValidator:
    """Checks a tool's args against its JSON Schema (compiled once)."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        try:
            cls = jsonschema.validators.validator_for(dict(schema))
            cls.check_schema(dict(schema))
        except jsonschema.SchemaError as exc:
            raise ValueError(f"not a valid JSON Schema: {exc.message}") from None
        self.schema = dict(schema)
        self._validator = cls(schema)

    def check(self, args: Mapping[str, Any]) -> str | None:
        """The first problem with ``args`` (path and message), or None when they are valid."""
        try:
            error = jsonschema.exceptions.best_match(self._validator.iter_errors(dict(args)))
        except Exception as exc:  # a value the validator cannot handle is malformed, not allowed
            return f"args could not be checked: {exc}"
        if error is None:
            return None
        where = ".".join(str(p) for p in error.absolute_path)
        return f"{where}: {error.message}" if where else error.message


def schema_from_signature(fn: Callable[..., Any], sig: inspect.Signature | None = None) -> dict[str, Any]:
    """The JSON Schema of ``fn``'s keyword arguments, from its annotations (via pydantic); ``sig``, when given,
    is the signature to read instead of ``fn``'s own (a method's, without ``self``)."""
    sig = sig or inspect.signature(fn)
    fields: dict[str, Any] = {}
    extra: Literal["allow", "forbid"] = "forbid"
    for name, param in sig.parameters.items():
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            extra = "allow"
            continue
        annotation = Any if param.annotation is inspect.Parameter.empty else param.annotation
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            fields[name] = (list[annotation], [])  # type: ignore[valid-type]  # *lines arrive as a list
            continue
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[name] = (annotation, default)
    model = create_model(f"{fn.__name__}_args", __config__=ConfigDict(extra=extra), **fields)
    schema: dict[str, Any] = model.model_json_schema()
    schema.pop("title", None)
    return schema


def call_args(sig: inspect.Signature, args: Mapping[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """Positional and keyword arguments to call a function of signature ``sig`` with a call's args (a tool
    call names every argument; ``*args`` and positional-only parameters are passed by position)."""
    rest = dict(args)
    positional: list[Any] = []
    kinds = inspect.Parameter
    by_position = any(p.kind is kinds.VAR_POSITIONAL for p in sig.parameters.values())
    for name, p in sig.parameters.items():
        if p.kind is kinds.VAR_POSITIONAL:
            positional.extend(rest.pop(name, ()))
        elif p.kind is kinds.POSITIONAL_ONLY or (p.kind is kinds.POSITIONAL_OR_KEYWORD and by_position):
            if name in rest:
                positional.append(rest.pop(name))
            elif p.default is not kinds.empty:
                positional.append(p.default)
    return positional, rest
