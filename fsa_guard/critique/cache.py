"""A cache of verified critiques, so the same question is not paid for twice.

The key is everything the critic's answer depends on: the spec's digest, which critic judged, the call
(tool and args), and the relevant context the critic was shown — the person's request, the latest calls
and their outputs, the integration's context, the values and priorities shown and what asked for judgment.
Only verdicts that passed the mechanical checks are kept; failures never are.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from ..action import Call, jsonable
from .base import CritiqueRequest, CritiqueVerdict

__all__ = ["CritiqueCache"]


class CritiqueCache:
    """An in-process LRU of verdicts, each kept ``ttl`` seconds; safe to share between threads."""

    def __init__(self, ttl: float, max_entries: int = 4096, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, CritiqueVerdict]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(request: CritiqueRequest, critic: str) -> str:
        """The cache key of ``request`` when judged by the critic named ``critic``."""
        action = request.action
        recent = []
        if request.history_limit > 0:
            for item in list(action.history)[-request.history_limit :]:
                try:
                    call = Call.coerce(item)
                except TypeError:
                    continue
                recent.append([call.tool, jsonable(call.args), jsonable(call.output)])
        blob = json.dumps(
            [
                request.spec_digest,
                critic,
                action.tool,
                jsonable(action.args),
                action.request,
                recent,
                jsonable(action.context),
                [v.id for v in request.values],
                [p.model_dump(mode="json") for p in request.priorities],
                list(request.asked_by),
            ],
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            default=repr,
        )
        return hashlib.sha256(blob.encode()).hexdigest()

    def get(self, key: str) -> CritiqueVerdict | None:
        """The verdict kept under ``key``, unless it has expired."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if self._clock() >= entry[0]:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def put(self, key: str, verdict: CritiqueVerdict) -> None:
        """Keep ``verdict`` under ``key`` for ``ttl`` seconds."""
        if self.ttl <= 0:
            return
        with self._lock:
            self._entries[key] = (self._clock() + self.ttl, verdict)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget every verdict."""
        with self._lock:
            self._entries.clear()
