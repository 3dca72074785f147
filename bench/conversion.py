"""What a value costs to cross between Python and CEL in the `common-expression-language` binding.

    .venv/bin/python bench/conversion.py

Most of a decision's time is spent here, not in evaluating CEL: this measures it, so changes to how
values are passed (and upstream fixes to the binding) can be judged. Prints microseconds per operation
(best of 5 runs).
"""

from __future__ import annotations

import timeit
from datetime import UTC, datetime

import cel

NOW = datetime(2026, 3, 2, 10, tzinfo=UTC)
VALUES = {
    "int": 1,
    "bool": True,
    "float": 1.5,
    "str": "DE44500105175407324931",
    "datetime": NOW,
    "list of 5 ints": [1, 2, 3, 4, 5],
    "list of 5 str": ["a", "b", "c", "d", "e"],
    "dict, 3 str keys, int values": {"a": 1, "b": 2, "c": 3},
    "action: tool + 3 args": {"tool": "pay", "args": {"id": "INV-1", "account": "DE44", "amount": 4800.0}},
}


def best(fn: object, n: int = 5000) -> float:
    return min(timeit.repeat(fn, number=n, repeat=5)) / n * 1e6  # type: ignore[arg-type]


def main() -> None:
    empty = best(lambda: cel.Context())
    print(f"{'value':32} {'into CEL':>9} {'returned by a function':>23}")
    twice = cel.compile("f() == f()")
    baseline = cel.compile("true")
    for name, value in VALUES.items():
        into = best(lambda v=value: cel.Context(variables={"x": v})) - empty
        ctx = cel.Context(functions={"f": lambda v=value: v})
        back = (best(lambda c=ctx: twice.execute(c)) - best(lambda c=ctx: baseline.execute(c))) / 2
        print(f"{name:32} {into:8.2f}  {back:22.2f}")
    plain = cel.Context(variables={"s": "SELECT 1"})
    regex = cel.compile('s.matches("(?i)^\\\\s*(select|with)\\\\b")')
    cost = best(lambda: regex.execute(plain), 1000)
    print(f"{'matches() with a literal pattern':32} {cost:8.2f}  (the pattern is compiled on every call)")


if __name__ == "__main__":
    main()
