"""kill -9 during ingest and remove (default store): a child process kills itself at a chosen
point of a write (or the test kills it at a random moment); afterwards the index opens as the
previous or the new complete state, every chunk's offsets still recover its text, vectors, sentence
vectors and BM25 agree with the chunks, and the next writer works and leaves no stray files."""

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rag.config import RagConfig
from rag.ingest.pipeline import ingest
from rag.stores.factory import open_store
from tests.fakes import FakeEmbedder

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import os, signal, sys
from rag.config import RagConfig
from rag.ingest.pipeline import ingest, remove
from rag.stores.factory import open_store
import rag.stores.local as local
import rag.stores.segments as seg
from tests.fakes import FakeEmbedder

index, mode, what, point = sys.argv[1:5]
name, _, nth = point.partition(":")
nth = int(nth or 1)
calls = [0]

def hit():
    calls[0] += 1
    if calls[0] == nth:
        os.kill(os.getpid(), signal.SIGKILL)

def before(owner, attr, cond=lambda *a, **k: True):
    real = getattr(owner, attr)
    def wrapped(*a, **k):
        if cond(*a, **k):
            hit()
        return real(*a, **k)
    setattr(owner, attr, wrapped)

def after(owner, attr):
    real = getattr(owner, attr)
    def wrapped(*a, **k):
        out = real(*a, **k)
        hit()
        return out
    setattr(owner, attr, wrapped)

if name == "upsert":          # the Nth file is about to be written (earlier ones are in the open transaction)
    before(local.LocalWriter, "upsert")
elif name == "drop":          # a document's rows were deleted inside the open transaction
    after(local.LocalWriter, "_drop")
elif name == "segment":       # the Nth segment's files are on disk, not yet referenced by a commit
    after(seg, "write_segment")
elif name == "commit":        # the last statement before COMMIT
    before(local.LocalWriter, "_set_meta", lambda self, key, value: key == "generation")
elif name == "maintain":      # committed; merging not started
    before(local.LocalWriter, "_maintain")
elif name == "old_files":     # a merge committed; its old segment files not yet deleted
    before(seg, "remove_files")
cfg = RagConfig.from_env(index_dir=index)
emb = FakeEmbedder()
print("start", flush=True)
if mode == "ingest":
    ingest([what], cfg, emb, progress=False)
else:
    remove(what.split(","), open_store(cfg, emb.id, emb.dim).writer())
print("done", flush=True)
"""


def _run(index: Path, mode: str, what: str, point: str = "none", kill_after: float | None = None) -> int:
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    p = subprocess.Popen([sys.executable, "-c", CHILD, str(index), mode, what, point], cwd=ROOT, env=env,
                         text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if kill_after is not None:
        assert p.stdout.readline().strip() == "start"
        time.sleep(kill_after)
        p.send_signal(signal.SIGKILL)
    out, err = p.communicate(timeout=120)
    assert "Traceback" not in err, err
    return p.returncode


def _text(i: int) -> str:
    return (f"Document {i} gaat over gemeente nummer{i}. De raad van nummer{i} besprak de begroting. "
            f"Er werd {i * 7} duizend euro uitgetrokken voor de dijk bij nummer{i}.")


def _files(folder: Path, names: range) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for i in names:
        (folder / f"doc{i:02d}.txt").write_text(_text(i), encoding="utf-8")
        out[f"doc{i:02d}.txt"] = _text(i)
    return out


def _state(index: Path) -> dict[str, str]:
    """The documents of the index, after checking that all of its parts agree."""
    emb = FakeEmbedder()
    store = open_store(RagConfig.from_env(index_dir=str(index)), emb.id, emb.dim)
    docs = store.chunks.documents()
    n_chunks = n_sents = 0
    for d in docs:
        text = store.chunks.document_text(d.doc_id)
        ids = store.chunks.chunk_ids([d.doc_id])
        assert len(ids) == d.n_chunks and d.chars == len(text)
        for cid in ids:
            c = store.chunks.chunk(cid)
            assert text[c.start:c.end] == c.text
            assert all(text[s.start:s.end] == s.text for s in c.sentences)
            n_sents += len(c.sentences)
        n_chunks += len(ids)
        word = f"nummer{int(d.name[3:5])}"  # unique to this document
        assert {cid for cid, _ in store.keywords.top(word, 10)} == ids
        vec = store.vectors.get(sorted(ids))
        assert vec.shape == (len(ids), emb.dim) and np.allclose(np.linalg.norm(vec, axis=1), 1, atol=1e-4)
    assert len(store.chunks) == len(store.vectors) == n_chunks and len(store.sentences) == n_sents
    state = {d.name: store.chunks.document_text(d.doc_id) for d in docs}
    store.close()
    return state


def _leftovers(index: Path) -> set[str]:
    import sqlite3

    con = sqlite3.connect(index / "store.sqlite")
    live = {n for (n,) in con.execute("SELECT name FROM segments")}
    con.close()
    return {p.stem for p in (index / "segments").iterdir()} - live


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """An index with 9 documents ingested one commit each (9 small segments per kind: the next
    commit of a small file triggers a merge)."""
    root = tmp_path_factory.mktemp("crash")
    docs = root / "docs"
    cfg = RagConfig.from_env(index_dir=str(root / "index"))
    emb = FakeEmbedder()
    state = {}
    for i in range(9):
        state.update(_files(docs, range(i, i + 1)))
        ingest([docs / f"doc{i:02d}.txt"], cfg, emb, progress=False)
    assert _state(root / "index") == state
    return root / "index", state


def _copy(base_index: Path, tmp_path: Path) -> Path:
    index = tmp_path / "index"
    shutil.copytree(base_index, index)
    return index


@pytest.mark.parametrize("point", ["upsert:1", "upsert:3", "segment:1", "segment:2", "commit", "maintain",
                                   "segment:3", "old_files", "none"])
def test_kill_during_ingest_leaves_previous_or_new_state(base, tmp_path, point):
    base_index, before = base
    index = _copy(base_index, tmp_path)
    new = _files(tmp_path / "new", range(20, 25))  # 5 one-chunk files: a 10th small segment, so a merge follows
    after = {**before, **new}
    rc = _run(index, "ingest", str(tmp_path / "new"), point)
    got = _state(index)
    if point == "none":
        assert rc == 0 and got == after
    else:
        assert rc == -signal.SIGKILL
        # killed before COMMIT: the previous state; at or after it: the new one
        assert got == (after if point in ("maintain", "segment:3", "old_files") else before)
    assert _run(index, "ingest", str(tmp_path / "new")) == 0  # the next writer gets the lock and finishes
    assert _state(index) == after and not _leftovers(index)


@pytest.mark.parametrize("point", ["drop:1", "drop:2", "commit", "maintain", "none"])
def test_kill_during_remove_leaves_previous_or_new_state(base, tmp_path, point):
    base_index, before = base
    index = _copy(base_index, tmp_path)
    after = {k: v for k, v in before.items() if k not in ("doc02.txt", "doc05.txt")}
    rc = _run(index, "remove", "doc02.txt,doc05.txt", point)
    got = _state(index)
    assert rc == (0 if point == "none" else -signal.SIGKILL)
    assert got == (after if point in ("maintain", "none") else before)
    _run(index, "remove", "doc02.txt,doc05.txt")
    assert _state(index) == after and not _leftovers(index)


def test_kill_at_random_moments_of_a_large_ingest(base, tmp_path):
    base_index, before = base
    new = _files(tmp_path / "new", range(30, 70))
    after = {**before, **new}
    rng = random.Random(7)
    outcomes = []
    for trial in range(6):
        index = _copy(base_index, tmp_path / f"t{trial}")
        rc = _run(index, "ingest", str(tmp_path / "new"), kill_after=rng.uniform(0.0, 0.6))
        got = _state(index)
        assert got in (before, after), f"trial {trial}: a mix of {len(got)} documents"
        outcomes.append((rc, got == after))
    assert any(rc == -signal.SIGKILL for rc, _ in outcomes)  # at least some kills landed mid-ingest
