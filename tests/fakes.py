"""Tiny fakes for fast unit tests: a hashing bag-of-words embedder and a scripted generator."""

from __future__ import annotations

import hashlib

import numpy as np

from rag.text import content_terms


class FakeEmbedder:
    """Deterministic bag-of-stems vectors: texts sharing words get high cosine."""

    id = "fake-embedder"

    def __init__(self, dim: int = 64):
        self.dim = dim
        self.calls = 0

    def _vec(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float32)
        for t in content_terms(text):
            h = int(hashlib.md5(t.encode()).hexdigest(), 16)
            v[h % self.dim] += 1.0
        v[0] += 0.1  # never the zero vector
        return v / np.linalg.norm(v)

    def embed_passages(self, texts, progress=False):
        self.calls += 1
        return np.stack([self._vec(t) for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def embed_queries(self, texts):
        return np.stack([self._vec(t) for t in texts])


class ScriptedGenerator:
    """Returns canned replies in order; records the prompts it was given."""

    name = "scripted"

    def __init__(self, replies):
        self.replies = list(replies)
        self.prompts = []

    def generate(self, messages, max_tokens=128, stream=False):
        self.prompts.append(messages)
        reply = self.replies.pop(0) if self.replies else ""
        if stream:
            return iter([reply[i : i + 7] for i in range(0, len(reply), 7)])
        return reply


class ScriptedReader(ScriptedGenerator):
    """A generator that also points (fixed probabilities over [0..n]) and copies (scripted replies)."""

    def __init__(self, probs, copies, replies=(), yes=0.9):
        super().__init__(replies)
        self.probs = list(probs)  # P(none), P([1]), P([2]), ...
        self.copies = list(copies)
        self.yes = yes  # P(yes) for a yes/no question (the copy strategy's verification)
        self.prefills = []
        self.questions = []  # the yes/no questions asked

    def option_logprobs(self, messages, prefill, options):
        import math

        if not options[0].isdigit():  # yes/no
            self.questions.append(messages)
            return [math.log(self.yes), math.log(1 - self.yes)]
        self.prompts.append(messages)
        self.prefills.append(prefill)
        p = [self.probs[int(o)] if int(o) < len(self.probs) else 1e-9 for o in options]
        s = sum(p)
        return [math.log(max(x, 1e-12) / s) for x in p]

    def complete(self, messages, prefill="", max_tokens=48, stop=None):
        self.prefills.append(prefill)
        return self.copies.pop(0) if self.copies else ""
