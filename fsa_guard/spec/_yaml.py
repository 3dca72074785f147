"""Read YAML (and JSON, a subset of it) keeping the line of every key, so problems can say where they are."""

from __future__ import annotations

import re
from typing import Any

import yaml

Path_ = tuple[str | int, ...]

# libyaml's loader keeps node marks too, and is ~10x faster on large specs.
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YAMLProblem(Exception):
    """A YAML syntax problem or duplicate key, with its 1-based line."""

    def __init__(self, message: str, line: int | None, key: str = "", hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.key = key
        self.hint = hint


# What a YAML syntax error usually means in a spec: (what the parser says, what the line holds, the fix).
_HINTS = (
    ("", "\t", "YAML indents with spaces, not tabs"),
    ("constructor for the tag '!", "!", "quote an expression that starts with '!': when: '!paid_before'"),
    ("expected alphabetic or numeric character", "*", "quote a glob that starts with '*': tools: ['*']"),
    ("found another document", "---", "a spec is one YAML document: remove the '---' line"),
    ("expected key", ': "', "quote an expression that starts with a quote whole: when: '\"a\" in context.roles'"),
    ("expected key", ": '", "quote an expression that starts with a quote whole: when: \"'a' in context.roles\""),
)


def _marked(exc: yaml.MarkedYAMLError, text: str, what: str) -> YAMLProblem:
    """The problem at the line the parser marked, with the usual fix for what that line holds."""
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark else None
    lines = text.splitlines()
    held = lines[line - 1] if line and line <= len(lines) else ""
    problem = str(exc.problem or exc)
    fix = next((fix for said, has, fix in _HINTS if said in problem and has in held), None)
    return YAMLProblem(f"{what}: {problem}", line, hint=fix)


# JSON writes a character beyond the BMP as two escaped surrogates ("\ud83d\ude00"), which YAML refuses.
_SURROGATE_PAIR = re.compile(r"\\u(d[89ab][0-9a-f]{2})\\u(d[c-f][0-9a-f]{2})", re.IGNORECASE)


def _joined_pairs(text: str) -> str:
    """``text`` with each escaped surrogate pair written as the character it encodes (in a JSON file every
    escape is inside a string, so this changes no other text)."""
    if "\\u" not in text:
        return text
    return _SURROGATE_PAIR.sub(lambda m: chr(0x10000 + ((int(m[1], 16) - 0xD800) << 10) + int(m[2], 16) - 0xDC00), text)


def load_with_lines(text: str, json: bool = False) -> tuple[Any, dict[Path_, int]]:
    """Parse ``text`` (``json``: a JSON file); return the data and a map from key path (e.g.
    ``("norms", 0, "when")``) to line."""
    loader = _Loader(_joined_pairs(text) if json else text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        raise _marked(exc, text, "YAML syntax error") from None
    except yaml.YAMLError as exc:
        raise YAMLProblem(f"YAML error: {exc}", None) from None
    finally:
        loader.dispose()
    lines: dict[Path_, int] = {}
    if node is None:
        return None, lines
    try:
        return _build(loader, node, (), lines, [MAX_NODES]), lines
    except yaml.MarkedYAMLError as exc:
        raise _marked(exc, text, "YAML error") from None
    except RecursionError:
        raise YAMLProblem("a YAML alias refers to itself (an endless structure)", None) from None
    except (yaml.YAMLError, ValueError, TypeError) as exc:
        raise YAMLProblem(f"YAML value error: {exc}", None) from None


#: Aliases can make a small file expand exponentially ("billion laughs"); no real spec comes near this.
MAX_NODES = 500_000


def _build(loader: yaml.SafeLoader, node: yaml.Node, path: Path_, lines: dict[Path_, int], budget: list[int]) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        raise YAMLProblem(
            f"the spec expands to more than {MAX_NODES:,} values (through YAML aliases?); refusing to load it",
            node.start_mark.line + 1,
        )
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        explicit = sum(1 for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge")
        loader.flatten_mapping(node)  # resolves YAML merge keys (<<): merged pairs come first
        merged = len(node.value) - explicit
        out: dict[Any, Any] = {}
        from_merge: set[Any] = set()
        for n, (key_node, value_node) in enumerate(node.value):
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool) and key is not None:
                raise YAMLProblem("mapping keys must be plain scalars", key_node.start_mark.line + 1)
            if n < merged:
                from_merge.add(key)
            elif key in from_merge:
                from_merge.discard(key)  # an explicit key overrides a merged one, as YAML says
            elif key in out:
                raise YAMLProblem(
                    f"duplicate key '{key}' (the later one would silently replace the earlier)",
                    key_node.start_mark.line + 1,
                    _dotted((*path, str(key))),
                )
            out[key] = _build(loader, value_node, (*path, str(key)), lines, budget)
            lines[(*path, str(key))] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, child, (*path, i), lines, budget) for i, child in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def _dotted(path: Path_) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def line_for(lines: dict[Path_, int], path: Path_) -> int | None:
    """The line of ``path``, or of its nearest ancestor that has one."""
    p = tuple(path)
    while p:
        if p in lines:
            return lines[p]
        p = p[:-1]
    return lines.get(())


dotted = _dotted
