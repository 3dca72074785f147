"""The linter: every load error, plus warnings that push specs toward what shared/VALUES-CARDS.md teaches.

Warnings never stop a spec from loading; they say where a spec is thin: policies that are not attentional
(ALL-CAPS plural noun plus a qualifier), vague praise words, slogans, norms that do not say which value
they serve, values that are never at stake anywhere.
"""

from __future__ import annotations

import re
from dataclasses import replace
from fnmatch import fnmatchcase
from pathlib import Path

from ..errors import Problem, did_you_mean
from ..verify.expr import Compiled
from .compiled import CompiledSpec, check_spec
from .loader import ResolvedSpec, Source, load_layers, resolve

__all__ = ["lint_spec"]

_POLICY = re.compile(r"^[A-Z][A-Z'’\-]*(?:\s+[A-Z][A-Z'’\-]*)*\s+[a-z0-9\"'(]")
_VAGUE = ("meaningful", "authentic", "good", "great", "nice", "appropriate", "proper", "best", "positive")
_SLOGANS = (
    "family values",
    "hustle",
    "safety first",
    "move fast",
    "customer first",
    "think different",
    "just do it",
    "no excuses",
    "live laugh love",
    "work hard play hard",
)


def lint_spec(*paths: str | Path) -> list[Problem]:
    """Every problem with the spec files: load errors (severity 'error') and style warnings."""
    compiled, problems = check_spec(*paths)
    if compiled is not None:
        resolved = compiled.resolved
    else:
        layers, _ = load_layers(paths)
        resolved, _ = resolve(layers)
    problems.extend(_warnings(resolved))
    if compiled is not None:
        problems.extend(_unused_lets(compiled))
        problems.extend(_cel_only(compiled))
        problems.extend(_revise_typos(compiled))
    return sorted(problems, key=lambda p: (p.file, p.line or 0, p.key))


def _unused_lets(compiled: CompiledSpec) -> list[Problem]:
    exprs = [c for n in compiled.norms for c in (n.when, *(r for _, r in n.revise)) if c is not None]
    exprs += [c for b in compiled.budgets for c in (b.when, b.measure) if c is not None]
    exprs += list(compiled.lets.values())
    used = {name for c in exprs for name in c.lets}
    out = []
    for name in compiled.lets:
        if name not in used:
            src = compiled.resolved.sources[("let", name)]
            out.append(_warn(src, src.key, f"let '{name}' is never used", "let-unused", "remove it, or use it"))
    return out


def _cel_only(compiled: CompiledSpec) -> list[Problem]:
    """Expressions fsa_guard cannot evaluate in Python: every tool they apply to decides on the CEL package
    alone, which costs about 1.5 times as much (README, "How expressions run")."""
    found: list[tuple[Source, str, Compiled]] = []
    for n in compiled.norms:
        found += [(n.source, f"{n.source.key}.when", n.when)] if n.when else []
        found += [(n.source, f"{n.source.key}.revise.{arg}", c) for arg, c in n.revise if c]
    for b in compiled.budgets:
        found += [(b.source, f"{b.source.key}.{k}", c) for k, c in (("when", b.when), ("measure", b.measure)) if c]
    for r in compiled.remember:
        found += [(r.source, f"{r.source.key}.{k}", c) for k, c in (("value", r.value), ("when", r.when)) if c]
    for name, c in compiled.lets.items():
        src = compiled.resolved.sources[("let", name)]
        found.append((src, src.key, c))
    lines = compiled.resolved.key_lines
    return [
        Problem(
            src.file,
            lines.get((src.file, key), src.line),
            key,
            f"runs on the CEL package alone, slower than in Python, because of {c.py_missing}",
            code="cel-only",
            severity="warning",
            hint="fine where it is needed; otherwise see README 'How expressions run' for what runs in Python",
        )
        for src, key, c in found
        if c.py is None
    ]


def _revise_typos(compiled: CompiledSpec) -> list[Problem]:
    """A revise key that is a near miss of an arg the norm's condition reads: the revision adds a new arg and
    leaves the one the condition is about, so the call it produces still meets the condition."""
    out = []
    for n in compiled.norms:
        read = _args_read(n.when, compiled.lets) if n.when is not None else None
        for arg, _ in n.revise:
            near = did_you_mean(arg, read) if read and arg not in read else None
            if near:
                key = f"{n.source.key}.revise.{arg}"
                message = f"norm '{n.id}' revises '{arg}', an arg its condition does not read"
                out.append(_warn(_at(compiled.resolved, n.source, key), key, message, "revise-unread", near))
    return out


def _args_read(c: Compiled, lets: dict[str, Compiled], seen: frozenset[str] = frozenset()) -> set[str] | None:
    """The action.args keys ``c`` reads, through its lets too (None: it may read any)."""
    if c.arg_keys is None:
        return None
    read = set(c.arg_keys)
    for name in c.lets - seen:
        more = _args_read(lets[name], lets, seen | {name})
        if more is None:
            return None
        read |= more
    return read


def _at(spec: ResolvedSpec, src: Source, key: str) -> Source:
    """``src`` at the line of ``key`` inside it, where the file has one."""
    return replace(src, line=spec.key_lines.get((src.file, key), src.line))


def _warn(src: Source, key: str, message: str, code: str, hint: str | None = None) -> Problem:
    return Problem(src.file, src.line, key or src.key, message, code=code, severity="warning", hint=hint)


# settings whose "allow" lets calls run that nobody judged: (section, key, code, message, hint)
_FAILS_OPEN = (
    (
        "critic",
        "on_error",
        "critic-fails-open",
        "critic.on_error: allow runs every call the spec asks to have judged, unjudged, whenever the critic is "
        "missing, down or untrustworthy",
        "escalate asks the person instead; deny refuses",
    ),
    (
        "escalation",
        "on_timeout",
        "approval-fails-open",
        "escalation.on_timeout: allow runs every call a person was asked about and did not answer in time",
        "deny (the default) refuses it; the agent can ask again",
    ),
)


def _warnings(spec: ResolvedSpec) -> list[Problem]:
    out: list[Problem] = []
    served = {v for n in spec.norms for v in n.serves} | {v for b in spec.budgets for v in b.serves}
    for card in spec.values:
        src = spec.sources[("values", card.id)]
        n = len(card.attends_to)
        if not 3 <= n <= 6:
            out.append(
                _warn(
                    src,
                    f"{src.key}.attends_to",
                    f"value '{card.id}' has {n} attentional policies; 3-6 "
                    "describe a value well enough to guide choices",
                    "policy-count",
                )
            )
        for i, policy in enumerate(card.attends_to):
            key = f"{src.key}.attends_to[{i}]"
            if not _POLICY.match(policy):
                out.append(
                    _warn(
                        src,
                        key,
                        f"'{policy}' is not written as an attentional policy",
                        "policy-form",
                        "start with an ALL-CAPS plural noun, then a qualifier: "
                        "'MOMENTS when a purchase serves a lasting need'",
                    )
                )
            out.extend(_wording(src, key, policy))
        out.extend(_wording(src, f"{src.key}.title", card.title))
        if not card.tools and card.id not in served:
            out.append(
                _warn(
                    src,
                    src.key,
                    f"value '{card.id}' is never at stake: it has no tools and no norm serves it",
                    "value-unused",
                    "add tools: [...] globs, or name it in a norm's serves",
                )
            )
        if not card.endorsed:
            out.append(
                _warn(
                    src,
                    f"{src.key}.endorsed",
                    f"value '{card.id}' was inferred and is inactive until the person endorses it",
                    "value-unendorsed",
                )
            )
    for kind, items in (("norms", spec.norms), ("budgets", spec.budgets)):
        for item in items:
            src = spec.sources[(kind, item.id)]
            if not item.serves:
                out.append(
                    _warn(
                        src,
                        src.key,
                        f"{kind[:-1]} '{item.id}' does not say which value it serves",
                        "no-serves",
                        "add serves: [value-id] so explanations cite the person's values",
                    )
                )
            if not item.description and not getattr(item, "message", None):
                out.append(
                    _warn(
                        src,
                        src.key,
                        f"{kind[:-1]} '{item.id}' has no description",
                        "no-description",
                        "one sentence in the person's words, shown in every explanation",
                    )
                )
    out.extend(_tool_globs(spec))
    for section, key, code, message, hint in _FAILS_OPEN:
        if getattr(spec, section).get(key) == "allow":
            src = spec.sources[(section, key)]
            out.append(_warn(src, src.key, message, code, hint))
    asks = any(n.effect == "critique" for n in spec.norms) or any(v.critique for v in spec.values)
    if spec.critic.get("samples", 1) > 1 and not asks:
        src = spec.sources[("critic", "samples")]
        out.append(
            _warn(src, src.key, "critic.samples is set, but no norm or value asks for judgment", "critic-unused")
        )
    return out


_REGEX_SIGNS = re.compile(r"\.[*+?]|[\^$\\()|+{]")  # in a glob, these are literal characters
_ANY_TOOL = ("x", "send_money", "delete-all-records")


def _tool_globs(spec: ResolvedSpec) -> list[Problem]:
    """Tool globs that will not do what they seem to: a regular expression (it matches no tool), and, under
    deny- or escalate-by-default, a glob that names every tool (so no tool is ever unknown)."""
    out: list[Problem] = []
    known = set(spec.known_tools)
    for kind, items in (("values", spec.values), ("norms", spec.norms), ("budgets", spec.budgets)):
        for item in items:
            src = spec.sources[(kind, item.id)]
            for i, glob in enumerate(item.tools):
                key = f"{src.key}.tools[{i}]"
                at = _at(spec, src, key)
                if _REGEX_SIGNS.search(glob):
                    hint = "* is any run of characters, ? one character, [abc] one of them: 'purchase_*'"
                    message = f"tool glob '{glob}' looks like a regular expression; in a glob only *, ? and [...] match"
                    out.append(_warn(at, key, message, "glob-regex", hint))
                if spec.unknown_tool != "allow" and glob in known and all(fnmatchcase(t, glob) for t in _ANY_TOOL):
                    message = (
                        f"tool glob '{glob}' names every tool, so no tool is unknown and "
                        f"unknown_tool: {spec.unknown_tool} never applies"
                    )
                    hint = "name the tools (or their families, 'crm_*'), so a tool nobody listed stays unknown"
                    out.append(_warn(at, key, message, "glob-knows-every-tool", hint))
    return out


def _wording(src: Source, key: str, text: str) -> list[Problem]:
    out = []
    low = text.casefold()
    for slogan in _SLOGANS:
        if slogan in low:
            out.append(
                _warn(
                    src,
                    key,
                    f"'{slogan}' reads like a slogan, not something a person attends to",
                    "slogan",
                    "say what the person pays attention to when living by this value",
                )
            )
    vague = [w for w in _VAGUE if re.search(rf"\b{w}\b", low)]
    if vague:
        out.append(
            _warn(
                src,
                key,
                f"vague word(s) {', '.join(vague)}: they could fit anything",
                "vague",
                "name the specific thing the person notices",
            )
        )
    return out
