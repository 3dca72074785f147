"""Load spec files: parse, validate, resolve ``extends``, and layer them. Every problem is collected.

Layering: layers apply left to right, each file's ``extends`` before the file itself. A later layer may
add values, norms, budgets, lets and priorities, and may tighten: strengthen a norm's effect
(allow < revise < critique < escalate < deny), lower a budget's limit, turn ``on_exceed`` from escalate to
deny, and make ``defaults.unknown_tool`` stricter. It may never remove, replace or loosen what an earlier
layer set; a spec that tries is rejected naming both files and the id.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import Problem, did_you_mean
from ._yaml import Path_, YAMLProblem, dotted, line_for, load_with_lines
from .model import (
    EFFECT_STRENGTH,
    ON_ERROR_STRENGTH,
    UNKNOWN_TOOL_STRENGTH,
    Budget,
    Norm,
    Priority,
    Remember,
    SpecFile,
    ValueCard,
    parse_window,
)

__all__ = ["Layer", "ResolvedSpec", "Source", "load_layers", "resolve"]


@dataclass(frozen=True, slots=True)
class Source:
    """Where something was written: file, line and key path."""

    file: str
    line: int | None
    key: str

    def problem(self, message: str, code: str = "invalid", hint: str | None = None) -> Problem:
        """A problem located here."""
        return Problem(self.file, self.line, self.key, message, code=code, hint=hint)


@dataclass(slots=True)
class Layer:
    """One parsed and validated spec file with the line of each key."""

    path: Path
    spec: SpecFile
    lines: dict[Path_, int]

    def source(self, *path: str | int) -> Source:
        """The source location of a key path in this file."""
        return Source(str(self.path), line_for(self.lines, path), dotted(path))


@dataclass(slots=True)
class ResolvedSpec:
    """All layers merged. ``sources`` maps ``("norms", id)``-style keys to where each item was written."""

    id: str
    unknown_tool: str = "allow"
    timezone: str = "UTC"
    max_revisions: int = 2
    let: dict[str, str] = field(default_factory=dict)
    values: list[ValueCard] = field(default_factory=list)
    norms: list[Norm] = field(default_factory=list)
    budgets: list[Budget] = field(default_factory=list)
    remember: list[Remember] = field(default_factory=list)
    priorities: list[Priority] = field(default_factory=list)
    storage: dict[str, str] = field(default_factory=dict)  # "store"/"audit" -> URL, file paths made absolute
    critic: dict[str, Any] = field(default_factory=dict)  # the critic settings some layer wrote
    escalation: dict[str, Any] = field(default_factory=dict)  # the escalation settings some layer wrote
    files: list[str] = field(default_factory=list)
    sources: dict[tuple[str, str], Source] = field(default_factory=dict)
    key_lines: dict[tuple[str, str], int] = field(default_factory=dict)  # (file, dotted key) -> line
    known_tools: list[str] = field(default_factory=list)  # tool globs that make a tool known

    def at(self, src: Source, suffix: str) -> Source:
        """The source of the key ``src.key + suffix`` (e.g. ``.when``), on its own line when known."""
        key = src.key + suffix
        return Source(src.file, self.key_lines.get((src.file, key), src.line), key)

    def canonical(self) -> dict[str, Any]:
        """The resolved spec as plain data, independent of file names and key order."""
        return {
            "fsa_guard": 1,
            "id": self.id,
            "defaults": {
                "unknown_tool": self.unknown_tool,
                "timezone": self.timezone,
                "max_revisions": self.max_revisions,
            },
            "let": dict(sorted(self.let.items())),
            "values": [v.model_dump(mode="json") for v in self.values],
            "norms": [n.model_dump(mode="json") for n in self.norms],
            "budgets": [b.model_dump(mode="json") for b in self.budgets],
            "remember": [r.model_dump(mode="json") for r in self.remember],
            "priorities": [p.model_dump(mode="json") for p in self.priorities],
            "critic": dict(sorted(self.critic.items())),
            "escalation": dict(sorted(self.escalation.items())),
        }

    def digest(self) -> str:
        """sha256 of the canonical resolved spec: what every decision records."""
        blob = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()


def load_layers(paths: Sequence[str | Path]) -> tuple[list[Layer], list[Problem]]:
    """Read ``paths`` and everything they extend, in layer order. Problems are returned, not raised."""
    layers: list[Layer] = []
    problems: list[Problem] = []
    done: set[Path] = set()

    def visit(path: Path, stack: tuple[Path, ...], ref: Source | None) -> None:
        path = path.resolve()
        if path in stack:
            cycle = " -> ".join(p.name for p in (*stack, path))
            where = ref or Source(str(path), None, "extends")
            problems.append(where.problem(f"'extends' makes a cycle: {cycle}", code="extends-cycle"))
            return
        if path in done:
            return
        done.add(path)
        layer, extends, lines = _read(path, problems, ref)
        for i, rel in enumerate(extends):
            # files beneath are read even when this one is invalid, so all problems show in one run
            where = Source(str(path), line_for(lines, ("extends", i)), f"extends[{i}]")
            if "://" in rel:
                message = f"'extends' takes file paths, not URLs: {rel}"
                problems.append(
                    where.problem(message, code="missing-file", hint="download the spec and extend the file")
                )
                continue
            visit(path.parent / Path(rel).expanduser(), (*stack, path), where)
        if layer is not None:
            layers.append(layer)

    for p in paths:
        visit(Path(p), (), None)
    return layers, problems


def _read(path: Path, problems: list[Problem], ref: Source | None) -> tuple[Layer | None, list[str], dict[Path_, int]]:
    """Parse and validate one file; also return its ``extends`` entries, valid or not."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        msg = f"spec file not found: {path}"
        problems.append((ref or Source(str(path), None, "")).problem(msg, code="missing-file"))
        return None, [], {}
    except (OSError, UnicodeDecodeError) as exc:
        hint = "save it as UTF-8" if isinstance(exc, UnicodeDecodeError) else None
        problems.append((ref or Source(str(path), None, "")).problem(f"cannot read {path}: {exc}", "unreadable", hint))
        return None, [], {}
    try:
        data, lines = load_with_lines(text, json=path.suffix.lower() == ".json")
    except YAMLProblem as exc:
        last = text.count("\n") + (0 if text.endswith("\n") else 1)
        line = min(exc.line, max(last, 1)) if exc.line else None
        problems.append(Problem(str(path), line, exc.key, exc.message, code="yaml", hint=exc.hint))
        return None, [], {}
    if not isinstance(data, dict):
        problems.append(
            Problem(str(path), 1, "", "a spec must be a mapping with 'fsa_guard: 1' at the top", code="not-a-spec")
        )
        return None, [], lines
    raw_extends = data.get("extends")
    extends = [e for e in raw_extends if isinstance(e, str)] if isinstance(raw_extends, list) else []
    try:
        spec = SpecFile.model_validate(data)
    except ValidationError as exc:
        problems.extend(_validation_problems(path, exc, lines))
        problems.extend(_raw_expression_problems(path, data, lines))  # so one bad key hides no CEL error
        problems.extend(_duplicate_ids(path, data, lines))  # nor a duplicate id
        return None, extends, lines
    if spec.id is None:
        spec = spec.model_copy(update={"id": path.stem})
    problems.extend(_duplicate_ids(path, data, lines))
    return Layer(path, spec, lines), extends, lines


_FIELDS: dict[str, Any] = {
    "": SpecFile,
    "defaults": SpecFile.model_fields["defaults"].annotation,
    "values": ValueCard,
    "norms": Norm,
    "budgets": Budget,
    "priorities": Priority,
    "remember": Remember,
    "storage": SpecFile.model_fields["storage"].annotation,
    "critic": SpecFile.model_fields["critic"].annotation,
    "escalation": SpecFile.model_fields["escalation"].annotation,
}


# What the spec's patterns ask for, in words.
_PATTERNS = {
    r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$": "an id is ASCII letters, digits, '-', '_' or '.', starting with a letter "
    "or digit",
    r"^[A-Za-z_][A-Za-z0-9_]*$": "a name is ASCII letters, digits or '_', not starting with a digit",
}
_EXPRESSION_KEYS = frozenset({"when", "measure", "revise", "let", "value"})


def _validation_problems(path: Path, exc: ValidationError, lines: dict[Path_, int]) -> Iterable[Problem]:
    for err in exc.errors():
        loc = tuple(str(p) if not isinstance(p, int) else p for p in err["loc"] if p != "[key]")
        kind = err["type"]
        hint = None
        if kind == "extra_forbidden":
            key = str(loc[-1])
            section = str(loc[0]) if len(loc) > 1 else ""
            model = _FIELDS.get(section, SpecFile) if len(loc) <= 3 else None
            fields = list(model.model_fields) if model is not None and hasattr(model, "model_fields") else []
            hint = did_you_mean(key, fields) or (f"allowed keys: {', '.join(fields)}" if fields else None)
            message = f"unknown key '{key}'"
        elif kind == "missing":
            message = f"missing required key '{loc[-1]}'"
            loc = loc[:-1] or loc
        else:
            message = err["msg"].removeprefix("Value error, ")
            given = err.get("input")
            if kind == "string_pattern_mismatch":
                message = _PATTERNS.get(err.get("ctx", {}).get("pattern", ""), message)
            if given is not None and not isinstance(given, dict | list) and kind != "value_error":
                message += f" (got {given!r})"[:200]
            if kind == "string_type" and _EXPRESSION_KEYS.intersection(map(str, loc)):
                hint = f"an expression is YAML text: write '{json.dumps(given)}'; text inside it is quoted again"
        yield Problem(str(path), line_for(lines, loc), dotted(loc), message, code=kind, hint=hint)


def _raw_expression_problems(path: Path, data: dict[str, Any], lines: dict[Path_, int]) -> Iterable[Problem]:
    """CEL problems of a file that failed validation, read from its raw data."""
    from ..verify.expr import ExprError, compile_expr

    raw_lets = data.get("let")
    lets = [k for k in raw_lets if isinstance(k, str)] if isinstance(raw_lets, dict) else []
    found: list[tuple[Path_, Any]] = (
        [(("let", k), v) for k, v in raw_lets.items()] if isinstance(raw_lets, dict) else []
    )
    for section, keys in (("norms", ("when",)), ("budgets", ("when", "measure"))):
        items = data.get(section)
        for i, item in enumerate(items if isinstance(items, list) else []):
            if not isinstance(item, dict):
                continue
            found.extend(((section, i, k), item[k]) for k in keys if k in item)
            if isinstance(item.get("revise"), dict):
                found.extend(((section, i, "revise", a), e) for a, e in item["revise"].items())
    for where, expr in found:
        if not isinstance(expr, str) or not expr.strip():
            continue
        try:
            compile_expr(expr, lets)
        except ExprError as exc:
            yield Problem(str(path), line_for(lines, where), dotted(where), str(exc), code="cel", hint=exc.hint)


def _duplicate_ids(path: Path, data: dict[str, Any], lines: dict[Path_, int]) -> Iterable[Problem]:
    """Ids given twice in one section, read from the raw data: found in a file that fails validation too."""
    for section in ("values", "norms", "budgets", "remember"):
        items = data.get(section)
        seen: dict[str, int] = {}
        for i, item in enumerate(items if isinstance(items, list) else []):
            given = item.get("id") if isinstance(item, dict) else None
            if not isinstance(given, str):
                continue
            if given in seen:
                first = line_for(lines, (section, seen[given], "id"))
                where = Source(str(path), line_for(lines, (section, i, "id")), dotted((section, i, "id")))
                yield where.problem(
                    f"duplicate {section[:-1]} id '{given}' (first at line {first})", code="duplicate-id"
                )
            else:
                seen[given] = i


def resolve(layers: Sequence[Layer]) -> tuple[ResolvedSpec, list[Problem]]:
    """Merge ``layers`` in order, enforcing the layering rules."""
    problems: list[Problem] = []
    last = layers[-1] if layers else None
    out = ResolvedSpec(id=(last.spec.id or "spec") if last else "spec")
    unknown_from: Source | None = None
    strict_layer = 0
    zone_from: Source | None = None
    revisions_from: Source | None = None
    layer_tools: list[set[str]] = []
    for layer in layers:
        spec = layer.spec
        out.files.append(str(layer.path))
        out.key_lines.update({(str(layer.path), dotted(k)): n for k, n in layer.lines.items()})
        layer_tools.append(
            {t for v in spec.values if v.endorsed for t in v.tools}
            | {t for n in spec.norms for t in n.tools}
            | {t for b in spec.budgets for t in b.tools}
        )
        d = spec.defaults
        if d.unknown_tool is not None:
            if UNKNOWN_TOOL_STRENGTH[d.unknown_tool] < UNKNOWN_TOOL_STRENGTH[out.unknown_tool] and unknown_from:
                problems.append(
                    layer.source("defaults", "unknown_tool").problem(
                        f"cannot relax defaults.unknown_tool from '{out.unknown_tool}' ({unknown_from.file}) "
                        f"to '{d.unknown_tool}'",
                        code="layer-loosens",
                        hint="a later layer may only make unknown_tool stricter: allow < escalate < deny",
                    )
                )
            elif unknown_from is None or d.unknown_tool != out.unknown_tool:
                if out.unknown_tool == "allow" and d.unknown_tool != "allow":
                    strict_layer = len(out.files) - 1  # from here on, later layers cannot add known tools
                out.unknown_tool = d.unknown_tool
                unknown_from = layer.source("defaults", "unknown_tool")
        if d.timezone is not None:
            if zone_from is not None and d.timezone != out.timezone:
                problems.append(
                    layer.source("defaults", "timezone").problem(
                        f"cannot change defaults.timezone from '{out.timezone}' ({zone_from.file}) to "
                        f"'{d.timezone}': the earlier layer's time rules are read in its zone",
                        code="layer-replaces",
                        hint='give your own time functions a zone instead, e.g. hour(now, "Asia/Tokyo")',
                    )
                )
            else:
                out.timezone = d.timezone
                zone_from = zone_from or layer.source("defaults", "timezone")
        if d.max_revisions is not None:
            if d.max_revisions > out.max_revisions and revisions_from is not None:
                problems.append(
                    layer.source("defaults", "max_revisions").problem(
                        f"cannot raise defaults.max_revisions from {out.max_revisions} ({revisions_from.file}) "
                        f"to {d.max_revisions}",
                        code="layer-loosens",
                        hint="a later layer may only lower max_revisions: more rounds let more revisions run unasked",
                    )
                )
            else:
                out.max_revisions = d.max_revisions
                revisions_from = layer.source("defaults", "max_revisions")
        for name, expr in spec.let.items():
            here = layer.source("let", name)
            earlier = out.sources.get(("let", name))
            if earlier is not None and out.let[name] != expr:
                problems.append(
                    here.problem(
                        f"let '{name}' is already defined in {earlier.file}:{earlier.line}; a later layer cannot "
                        "redefine it (that would change what earlier norms mean)",
                        code="layer-replaces",
                        hint="choose another name",
                    )
                )
                continue
            out.let[name] = expr
            out.sources.setdefault(("let", name), here)
        _merge_values(layer, out, problems)
        _merge_norms(layer, out, problems)
        _merge_budgets(layer, out, problems)
        _merge_remember(layer, out, problems)
        _merge_storage(layer, out, problems)
        _merge_critic(layer, out, problems)
        _merge_escalation(layer, out, problems)
        for i, prio in enumerate(spec.priorities):
            out.priorities.append(prio)
            out.sources[("priorities", str(len(out.priorities) - 1))] = layer.source("priorities", i)
    # Under a baseline's deny- or escalate-by-default, a later layer cannot make a tool known by naming it:
    # only the layers up to the first one that made unknown_tool escalate or deny decide which tools are known.
    counted = layer_tools if out.unknown_tool == "allow" else layer_tools[: strict_layer + 1]
    out.known_tools = sorted(set().union(*counted)) if counted else []
    problems.extend(_check_references(out))
    return out, problems


def _merge_values(layer: Layer, out: ResolvedSpec, problems: list[Problem]) -> None:
    for i, card in enumerate(layer.spec.values):
        here = layer.source("values", i)
        earlier = out.sources.get(("values", card.id))
        if earlier is not None and earlier.file == here.file:
            continue  # a duplicate id within one file: reported as duplicate-id, not as layering
        if earlier is not None:
            if next(v for v in out.values if v.id == card.id) == card:
                continue  # repeated as it was: nothing replaced (as for a repeated norm or let)
            problems.append(
                here.problem(
                    f"value '{card.id}' is already defined in {earlier.file}:{earlier.line}; a later layer cannot "
                    "replace a values card",
                    code="layer-replaces",
                    hint="give your card its own id",
                )
            )
            continue
        out.values.append(card)
        out.sources[("values", card.id)] = here


def _merge_norms(layer: Layer, out: ResolvedSpec, problems: list[Problem]) -> None:
    for i, norm in enumerate(layer.spec.norms):
        here = layer.source("norms", i)
        earlier_src = out.sources.get(("norms", norm.id))
        if earlier_src is not None and earlier_src.file == here.file:
            continue  # a duplicate id within one file: reported as duplicate-id, not as layering
        if earlier_src is None:
            out.norms.append(norm)
            out.sources[("norms", norm.id)] = here
            continue
        pos = next(j for j, n in enumerate(out.norms) if n.id == norm.id)
        earlier = out.norms[pos]
        why = _norm_loosening(earlier, norm)
        if why:
            problems.append(
                here.problem(
                    f"norm '{norm.id}' from {earlier_src.file}:{earlier_src.line} cannot be {why} by a later layer",
                    code="layer-loosens",
                    hint="a later layer may only strengthen a norm's effect or add tools and serves; "
                    "write a new norm with its own id instead",
                )
            )
            continue
        # what a person approving the call is shown: the earlier layer's words, unless this one gave its own
        words = {k: getattr(earlier, k) for k in _WORDS if not getattr(norm, k)}
        out.norms[pos] = norm.model_copy(update=words) if words else norm
        out.sources[("norms", norm.id)] = here


_WORDS = ("description", "message")  # what a person asked about a call is shown


def _norm_loosening(earlier: Norm, later: Norm) -> str | None:
    if EFFECT_STRENGTH[later.effect] < EFFECT_STRENGTH[earlier.effect]:
        return f"loosened from '{earlier.effect}' to '{later.effect}'"
    if later.when != earlier.when:
        return "given another condition ('when')"
    if not set(earlier.tools) <= set(later.tools):
        return "narrowed to fewer tools"
    if earlier.revise is not None and later.effect == "revise" and later.revise != earlier.revise:
        return "given another revision"
    if not set(earlier.serves) <= set(later.serves):
        return "detached from the values it serves"
    stronger = EFFECT_STRENGTH[later.effect] > EFFECT_STRENGTH[earlier.effect]
    if not stronger and any(getattr(later, k) and getattr(later, k) != getattr(earlier, k) for k in _WORDS):
        return "given other words (its description or message) without a stronger effect"
    if later.human_overridable and not earlier.human_overridable:
        return "made human_overridable"
    if EFFECT_STRENGTH[later.effect_on_error()] < EFFECT_STRENGTH[earlier.effect_on_error()]:
        return f"made to {later.effect_on_error()} instead of {earlier.effect_on_error()} when its condition fails"
    return None


def _merge_budgets(layer: Layer, out: ResolvedSpec, problems: list[Problem]) -> None:
    for i, budget in enumerate(layer.spec.budgets):
        here = layer.source("budgets", i)
        earlier_src = out.sources.get(("budgets", budget.id))
        if earlier_src is not None and earlier_src.file == here.file:
            continue  # a duplicate id within one file: reported as duplicate-id, not as layering
        if earlier_src is None:
            out.budgets.append(budget)
            out.sources[("budgets", budget.id)] = here
            continue
        pos = next(j for j, b in enumerate(out.budgets) if b.id == budget.id)
        earlier = out.budgets[pos]
        why = None
        if budget.limit > earlier.limit:
            why = f"raised from {earlier.limit:g} to {budget.limit:g}"
        elif budget.window_seconds < earlier.window_seconds:
            why = f"given a shorter window ({budget.window} < {earlier.window})"
        elif budget.measure != earlier.measure or budget.when != earlier.when:
            why = "given another measure or condition"
        elif not set(earlier.tools) <= set(budget.tools):
            why = "narrowed to fewer tools"
        elif earlier.on_exceed == "deny" and budget.on_exceed == "escalate":
            why = "loosened from on_exceed deny to escalate"
        elif not set(earlier.serves) <= set(budget.serves):
            why = "detached from the values it serves"
        if why:
            problems.append(
                here.problem(
                    f"budget '{budget.id}' from {earlier_src.file}:{earlier_src.line} cannot be {why} by a later layer",
                    code="layer-loosens",
                    hint="a later layer may lower a limit, lengthen a window or add tools; add a new budget instead",
                )
            )
            continue
        out.budgets[pos] = budget
        out.sources[("budgets", budget.id)] = here


def _merge_remember(layer: Layer, out: ResolvedSpec, problems: list[Problem]) -> None:
    for i, rule in enumerate(layer.spec.remember):
        here = layer.source("remember", i)
        earlier = out.sources.get(("remember", rule.id))
        if earlier is not None and earlier.file == here.file:
            continue  # reported as duplicate-id
        if earlier is not None:
            if next(r for r in out.remember if r.id == rule.id) != rule:
                problems.append(
                    here.problem(
                        f"remember '{rule.id}' is already defined in {earlier.file}:{earlier.line}; a later layer "
                        "cannot change it (the earlier layer's norms read it)",
                        code="layer-replaces",
                        hint="choose another id",
                    )
                )
            continue
        out.remember.append(rule)
        out.sources[("remember", rule.id)] = here


def _merge_storage(layer: Layer, out: ResolvedSpec, problems: list[Problem]) -> None:
    for key in ("store", "audit"):
        url = getattr(layer.spec.storage, key)
        if url is None:
            continue
        url = _absolute_file_url(url, layer.path.parent)
        here = layer.source("storage", key)
        earlier = out.sources.get(("storage", key))
        if earlier is not None and out.storage[key] != url:
            problems.append(
                here.problem(
                    f"storage.{key} is set to {out.storage[key]!r} by {earlier.file}:{earlier.line}; a later layer "
                    "cannot move it",
                    code="layer-replaces",
                    hint="pass store=/audit= to the Guard or set FSA_GUARD_STORE/FSA_GUARD_AUDIT to override it",
                )
            )
            continue
        out.storage[key] = url
        out.sources.setdefault(("storage", key), here)


def _merge_critic(layer: Layer, out: ResolvedSpec, problems: list[Problem]) -> None:
    """A later layer may make ``on_error`` stricter (allow < escalate < deny) and ask for more ``samples``;
    any other critic setting an earlier layer wrote stays (a baseline may pin where its data is sent)."""
    for key, value in layer.spec.critic.model_dump(exclude_none=True).items():
        here = layer.source("critic", key)
        earlier = out.sources.get(("critic", key))
        current = out.critic.get(key)
        if key == "on_error":
            floor = current if current is not None else ("escalate" if out.files[:-1] else "allow")
            if ON_ERROR_STRENGTH[value] < ON_ERROR_STRENGTH[floor]:
                where = f"{earlier.file}:{earlier.line}" if earlier else "the default for a layer above a baseline"
                problems.append(
                    here.problem(
                        f"cannot relax critic.on_error from '{floor}' ({where}) to '{value}'",
                        code="layer-loosens",
                        hint="a later layer may only make on_error stricter: allow < escalate < deny",
                    )
                )
                continue
        elif key == "samples":
            if current is not None and value < current:
                problems.append(
                    here.problem(
                        f"cannot lower critic.samples from {current} ({earlier.file}:{earlier.line}) to {value}"
                        if earlier
                        else f"cannot lower critic.samples to {value}",
                        code="layer-loosens",
                        hint="a later layer may only ask for more samples",
                    )
                )
                continue
        elif earlier is not None and current != value:
            problems.append(
                here.problem(
                    f"critic.{key} is set to {current!r} by {earlier.file}:{earlier.line}; a later layer cannot "
                    "change it",
                    code="layer-replaces",
                    hint="pass critic= to the Guard to use another critic in code",
                )
            )
            continue
        out.critic[key] = value
        out.sources[("critic", key)] = here


def _merge_escalation(layer: Layer, out: ResolvedSpec, problems: list[Problem]) -> None:
    """A later layer may only make silence safer. ``on_timeout`` may turn from allow to deny (above a
    baseline, silence means deny unless the baseline itself wrote allow). The ``timeout`` may be shortened
    while silence means deny, and only lengthened while it means allow (a short wait would then approve)."""
    written = layer.spec.escalation.model_dump(exclude_none=True)
    for key in ("on_timeout", "timeout"):  # on_timeout first: it decides which way the timeout may move
        if key not in written:
            continue
        value = written[key]
        here = layer.source("escalation", key)
        earlier = out.sources.get(("escalation", key))
        current = out.escalation.get(key)
        if key == "timeout":
            silence_allows = out.escalation.get("on_timeout") == "allow"
            shorter = current is not None and parse_window(value) < parse_window(current)
            longer = current is not None and parse_window(value) > parse_window(current)
            looser = shorter if silence_allows else longer
            hint = (
                "while on_timeout is allow, a later layer may only lengthen the timeout"
                if silence_allows
                else "a later layer may only shorten the timeout"
            )
        else:
            floor = current if current is not None else ("deny" if out.files[:-1] else "allow")
            looser = value == "allow" and floor == "deny"
            hint = "a later layer may only turn on_timeout from allow to deny"
        if looser:
            where = f"{earlier.file}:{earlier.line}" if earlier else "the default for a layer above a baseline"
            problems.append(
                here.problem(
                    f"cannot relax escalation.{key} from {current or 'deny'!r} ({where}) to {value!r}",
                    code="layer-loosens",
                    hint=hint,
                )
            )
            continue
        out.escalation[key] = value
        out.sources[("escalation", key)] = here


def _absolute_file_url(url: str, base: Path) -> str:
    """A ``sqlite:///`` or ``jsonl:///`` URL with a relative path made absolute against ``base``."""
    scheme, _, rest = url.partition(":///")
    if scheme in ("sqlite", "jsonl") and rest and not rest.startswith("/"):
        return f"{scheme}:///{(base / rest).resolve()}"  # the path starts with '/': four slashes, absolute
    return url


def _check_references(spec: ResolvedSpec) -> Iterable[Problem]:
    ids = [v.id for v in spec.values]
    known = set(ids)

    def check(value_id: str, src: Source, what: str) -> Problem | None:
        if value_id in known:
            return None
        return src.problem(
            f"{what} names value '{value_id}', which no layer defines",
            code="unknown-value",
            hint=did_you_mean(value_id, ids) or "add a values card with this id, or fix the id",
        )

    sections: tuple[tuple[str, str, Sequence[Norm | Budget | Remember]], ...] = (
        ("norms", "norm", spec.norms),
        ("budgets", "budget", spec.budgets),
        ("remember", "remember rule", spec.remember),
    )
    for kind, label, items in sections:
        for item in items:
            src = spec.sources[(kind, item.id)]
            for j, vid in enumerate(item.serves):
                p = check(vid, spec.at(src, f".serves[{j}]"), f"{label} '{item.id}'")
                if p:
                    yield p
    pairs: dict[tuple[str, str, str], Source] = {}
    for i, prio in enumerate(spec.priorities):
        src = spec.sources[("priorities", str(i))]
        ctx = " ".join(prio.context.split()).casefold()
        other = pairs.get((ctx, prio.over, prio.prefer))
        if other is not None:
            yield src.problem(
                f"priorities contradict each other in context '{prio.context}': '{prio.prefer}' over "
                f"'{prio.over}' here and the reverse at {other.file}:{other.line}",
                code="priority-cycle",
                hint="keep the one the person holds; with neither, a conflict goes to the person",
            )
        pairs[(ctx, prio.prefer, prio.over)] = src
        for key in ("prefer", "over"):
            p = check(getattr(prio, key), spec.at(src, f".{key}"), "priority")
            if p:
                yield p
