"""A generation cache for evaluation runs: the same prompt gives the same (greedy) output, so
re-scoring a change to binding or refusal need not run the model again. Keyed by the generator
name, the chat messages and the generation options; stored as one JSON line per entry.

Cached answers have no real latency: runs that use the cache say so in ``results.json`` and their
latency metrics must not be quoted.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any, Iterator


class CachingGenerator:
    def __init__(self, inner: Any, path: str | Path):
        self.inner = inner
        self.name = getattr(inner, "name", type(inner).__name__)
        self.path = Path(path)
        self.hits = self.misses = 0
        self._lock = threading.Lock()
        self._cache: dict[str, Any] = {}
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    row = json.loads(line)
                    self._cache[row["key"]] = row["value"]

    def _key(self, kind: str, messages: list[dict], **opts: Any) -> str:
        blob = json.dumps([self.name, kind, messages, opts], ensure_ascii=False, sort_keys=True)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def _get_or_make(self, key: str, make):
        with self._lock:
            if key in self._cache:
                self.hits += 1
                return self._cache[key]
        value = make()
        with self._lock:
            self.misses += 1
            self._cache[key] = value
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps({"key": key, "value": value}, ensure_ascii=False) + "\n")
        return value

    def generate(self, messages: list[dict], max_tokens: int = 128, stream: bool = False):
        key = self._key("generate", messages, max_tokens=max_tokens)
        text = self._get_or_make(key, lambda: self.inner.generate(messages, max_tokens=max_tokens, stream=False))
        return iter([text]) if stream else text

    def __getattr__(self, name: str):
        """Other generator calls (scoring, options) are cached the same way when they return JSON data."""
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def call(messages: list[dict], *a: Any, **kw: Any):
            key = self._key(name, messages, args=list(a), **kw)
            return self._get_or_make(key, lambda: attr(messages, *a, **kw))

        return call
