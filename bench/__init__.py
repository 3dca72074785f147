"""fsa_guard's benchmarks: what a guard costs on every tool call, next to its peers.

    python -m bench                 # everything; writes docs/benchmarks.md, .json and benchmarks-scaling.png
    python -m bench --quick         # a smoke run with few samples (the test suite runs it), into build/bench/
    python -m bench --only peers    # one or more of: reference, scaling, peers, middleware, memory, profile,
                                    # into build/bench/ (--out DIR to choose)

Modules, each returning plain data (``run(...) -> dict``): ``reference`` (``decide`` on the reference specs
per store), ``scaling`` (the cost curve as specs grow), ``peers`` (cedarpy and invariant-ai side by side),
``middleware`` (FSAGuardMiddleware's share of a LangChain agent step), ``memory`` (peak RSS), ``hotpath``
(a profile of ``decide``); ``report`` renders them. The older scripts still run on their own:
``bench/decide.py``, ``bench/conversion.py`` (the cost of crossing into CEL), ``bench/state.py``
(decisions per second with durable stores, several processes).
"""
