"""Support judges for citation quality: does this evidence text support this claim?

No NLI model ships offline, so the default judge combines stemmed lexical coverage with E5
similarity (for English claims citing Dutch text). It is deliberately stricter than the
app's binder, so citation metrics are not the binder grading itself.
"""

from __future__ import annotations

from functools import lru_cache

from rag.text import term_coverage as lexical_coverage


class LexicalJudge:
    name = "lexical>=0.6"

    def __init__(self, threshold: float = 0.6):
        self.threshold = threshold

    def __call__(self, claim: str, evidence: str) -> bool:
        return lexical_coverage(claim, evidence) >= self.threshold


class LexicalE5Judge:
    """Supported when >= 60% of the claim's content words are in the evidence, or the E5
    cosine between claim and evidence is >= 0.87 (cross-lingual paraphrase)."""

    def __init__(self, embedder, lexical: float = 0.6, cosine: float = 0.87):
        self.embedder, self.lexical, self.cosine = embedder, lexical, cosine
        self.name = f"lexical>={lexical} or e5-cos>={cosine}"

    @lru_cache(maxsize=4096)
    def _cos(self, claim: str, evidence: str) -> float:
        q = self.embedder.embed_queries([claim])[0]
        p = self.embedder.embed_passages([evidence])[0]
        return float(q @ p)

    def __call__(self, claim: str, evidence: str) -> bool:
        if lexical_coverage(claim, evidence) >= self.lexical:
            return True
        return self._cos(claim, evidence) >= self.cosine
