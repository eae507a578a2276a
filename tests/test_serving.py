"""Serving: warm_up() loads every model once and touches everything the first question needs, so the
first question after it loads nothing and imports nothing."""

import shutil
import sys

import pytest

from tests.conftest import SEEDS
from tests.fakes import FakeEmbedder, ScriptedReader


class LazyEmbedder(FakeEmbedder):
    """Counts model loads (on first use, like the real lazy embedder) and calls by kind."""

    def __init__(self):
        super().__init__()
        self.loads, self.queries, self.passages = 0, 0, 0

    def _load(self):
        if not hasattr(self, "_loaded"):
            self._loaded = True
            self.loads += 1

    def embed_queries(self, texts):
        self._load()
        self.queries += 1
        return super().embed_queries(texts)

    def embed_passages(self, texts, progress=False):
        self._load()
        self.passages += 1
        return super().embed_passages(texts, progress)


class LazyReader(ScriptedReader):
    """A pointing/copying generator that counts its model loads."""

    def __init__(self):
        super().__init__(probs=[0.05, 0.9, 0.05], copies=["zie de bron"] * 10, replies=[""] * 10)
        self.loads = 0

    def _load(self):
        if self.loads == 0:
            self.loads = 1

    def generate(self, messages, max_tokens=128, stream=False):
        self._load()
        return super().generate(messages, max_tokens, stream)

    def option_logprobs(self, messages, prefill, options):
        self._load()
        return super().option_logprobs(messages, prefill, options)

    def complete(self, messages, prefill="", max_tokens=48, stop=None):
        self._load()
        return super().complete(messages, prefill, max_tokens, stop)


@pytest.fixture
def served(tmp_path, monkeypatch):
    """An assistant over the seeds whose generator comes from a counting factory, as in `rag serve`."""
    import rag.answer.generate
    from rag import Assistant
    from rag.config import RagConfig

    docs = tmp_path / "docs"
    docs.mkdir()
    for f in SEEDS.iterdir():
        shutil.copy(f, docs / f.name)
    made = []

    def factory(cfg, name=None):
        made.append(LazyReader())
        return made[-1]

    monkeypatch.setattr(rag.answer.generate, "get_generator", factory)
    cfg = RagConfig.from_env(index_dir=str(tmp_path / "index"), mode="generate", strategy="read")
    a = Assistant(cfg, embedder=LazyEmbedder())
    a.ingest([docs])
    a.embedder.loads = a.embedder.queries = a.embedder.passages = 0  # count from a freshly started server
    del a.embedder._loaded
    return a, made


def test_warm_up_loads_each_model_once_and_warms_queries_passages_and_prefix(served):
    from rag.answer.prompt import SYSTEM_PROMPT

    a, made = served
    steps = a.warm_up()
    emb = a.embedder
    assert emb.loads == 1 and emb.queries >= 1 and emb.passages >= 1
    assert len(made) == 1 and made[0].loads == 1
    gen = made[0]
    assert gen.prompts[0][0] == {"role": "system", "content": SYSTEM_PROMPT}  # the cached prefix
    assert gen.prefills, "the warm-up answer reached the generator (pointing)"
    assert {"embedder_s", "generator_s", "answer_s"} <= set(steps)


FRESH_SERVER = """
import json, sys
import rag.answer.generate
from rag import Assistant
from rag.config import RagConfig
from tests.test_serving import LazyEmbedder, LazyReader

made = []
rag.answer.generate.get_generator = lambda cfg, name=None: made.append(LazyReader()) or made[-1]
a = Assistant(RagConfig.from_env(index_dir=sys.argv[1], mode=sys.argv[2], strategy="read"), embedder=LazyEmbedder())
if sys.argv[3] == "warm":
    a.warm_up()
modules = set(sys.modules)
ans = a.ask("Wat wil de NAVO volgens Stoltenberg voorkomen met de gezondheidscrisis?")
print(json.dumps({"new_modules": sorted(set(sys.modules) - modules), "passages": len(ans.passages),
                  "mode": ans.mode, "generators": len(made), "generator_loads": sum(g.loads for g in made),
                  "embedder_loads": a.embedder.loads}))
"""


def _fresh_server(index: str, mode: str, warm: bool) -> dict:
    """A new process (nothing imported or loaded yet, like `rag serve` after a restart) answering one question."""
    import json
    import subprocess

    from tests.conftest import ROOT

    out = subprocess.run([sys.executable, "-c", FRESH_SERVER, index, mode, "warm" if warm else "cold"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_first_question_after_warm_up_loads_and_imports_nothing(served):
    a, made = served
    a.warm_up()
    ans = a.ask("Wat wil de NAVO volgens Stoltenberg voorkomen met de gezondheidscrisis?")
    assert ans.passages and len(made) == 1 and made[0].loads == 1 and a.embedder.loads == 1
    # in a fresh process (as after `rag serve` starts), where nothing was imported by an ingest before
    fresh = _fresh_server(a.cfg.index_dir, "generate", warm=True)
    assert fresh["passages"] > 0 and fresh["embedder_loads"] == 1
    assert fresh["generators"] == 1 and fresh["generator_loads"] == 1
    assert fresh["new_modules"] == []  # a lazy import on the answer path that warm_up misses fails here


def test_extractive_warm_up_leaves_the_generator_unloaded(served):
    a, made = served
    a.cfg = a.cfg.with_overrides(mode="extractive")
    assert a.warm_up()["answer_s"] >= 0
    assert made == [] and a.embedder.loads == 1
    assert a.ask("Hoeveel inwoners beschermt de NAVO?").mode == "extractive"
    assert made == [] and a.embedder.loads == 1
