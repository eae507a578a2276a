"""Writers and readers at the same time on the default store: one writer at a time (a second one
waits, or fails clearly after the timeout; a killed holder's lock is free again), readers never
wait, two `ingest` processes started together both land, and questions asked while another thread
updates the documents always cite offsets that hold in the snapshot they were answered from."""

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rag.ingest.pipeline import ingest
from rag.stores.factory import open_store
from rag.stores.lock import WriterLock, WriterLockTimeout

ROOT = Path(__file__).resolve().parent.parent


def _child(code: str, *args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


HOLD = """
import sys, time
from rag.stores.lock import WriterLock
lock = WriterLock(sys.argv[1]).acquire()
print("held", flush=True)
time.sleep(120)
"""


def test_second_writer_fails_clearly_after_timeout_and_a_killed_holder_frees_the_lock(tmp_path):
    p = _child(HOLD, str(tmp_path))
    try:
        assert p.stdout.readline().strip() == "held"
        messages = []
        with pytest.raises(WriterLockTimeout, match=rf"still being written by pid {p.pid} .* after 0.3 s"):
            WriterLock(tmp_path, timeout=0.3, on_wait=messages.append).acquire()
        assert len(messages) == 1 and f"pid {p.pid}" in messages[0] and "waiting up to 0.3 s" in messages[0]
        os.kill(p.pid, signal.SIGKILL)
        p.wait(10)
        t = time.perf_counter()
        with WriterLock(tmp_path, timeout=10) as lock:  # the stale lock is recovered at once
            assert lock.held
        assert time.perf_counter() - t < 2
    finally:
        p.kill()
        p.wait(10)


def _write(d: Path, name: str, text: str) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_text(text, encoding="utf-8")
    return d / name


def test_second_writer_waits_with_a_message_and_readers_are_never_blocked(cfg, fake_embedder, tmp_path, caplog):
    docs = tmp_path / "docs"
    _write(docs, "a.txt", "De NAVO bestaat 75 jaar.")
    ingest([docs], cfg, fake_embedder, progress=False)
    store = open_store(cfg, fake_embedder.id, fake_embedder.dim)
    w1 = store.writer()
    _write(docs, "b.txt", "Zweden trad toe tot de NAVO.")
    from rag.ingest.loaders import load

    from rag.ingest.chunker import ChunkerConfig, chunk_document

    doc = load(docs / "b.txt")
    chunks = chunk_document(doc, ChunkerConfig())
    w1.upsert(doc, chunks, fake_embedder.embed_passages([c.text for c in chunks]))  # write transaction open
    reader = open_store(cfg, fake_embedder.id, fake_embedder.dim)  # readers neither wait nor see it
    assert [d.name for d in reader.chunks.documents()] == ["a.txt"] and reader.keywords.top("NAVO", 3)
    done = []

    def second():
        w2 = store.writer()
        done.append(w2.has_document(doc.path))  # it reads only after the first writer committed
        w2.close()

    def waiting():
        return any("is being written by pid" in r.getMessage() and "waiting up to" in r.getMessage()
                   for r in caplog.records)

    with caplog.at_level(logging.WARNING, logger="rag.stores.lock"):
        t = threading.Thread(target=second)
        t.start()
        deadline = time.time() + 30
        while not waiting() and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)
        assert waiting() and t.is_alive() and not done  # it said so, and waits
        w1.commit()
        t.join(10)
    assert done == [True]


INGEST = """
import os, sys, time
from rag.config import RagConfig
from rag.ingest.pipeline import ingest
from tests.fakes import FakeEmbedder
cfg = RagConfig.from_env(index_dir=sys.argv[1])
emb = FakeEmbedder()
open(sys.argv[3] + "." + os.path.basename(sys.argv[2]), "w").close()  # ready
while not os.path.exists(sys.argv[3]):
    time.sleep(0.005)
rep = ingest([sys.argv[2]], cfg, emb, progress=False)
print(len(rep.added), len(rep.errors), flush=True)
"""


def test_two_ingest_processes_started_together_keep_all_files(tmp_path):
    index, go = tmp_path / "index", tmp_path / "go"
    for side in ("a", "b"):
        for i in range(60):
            _write(tmp_path / side, f"{side}{i:02d}.txt",
                   f"Verslag {side} nummer {i}. De gemeente {side}{i} besprak de begroting van jaar {2000 + i}.")
    procs = [_child(INGEST, str(index), str(tmp_path / side), str(go)) for side in ("a", "b")]
    deadline = time.time() + 120
    while not all((tmp_path / f"go.{side}").exists() for side in ("a", "b")) and time.time() < deadline:
        time.sleep(0.01)  # both have imported everything and poll for the start signal
    go.write_text("go")
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert [o[0].split() for o in outs] == [["60", "0"], ["60", "0"]]
    assert any("is being written by" in o[1] for o in outs)  # one of them waited for the other
    from rag.config import RagConfig
    from tests.fakes import FakeEmbedder

    emb = FakeEmbedder()
    store = open_store(RagConfig.from_env(index_dir=str(index)), emb.id, emb.dim)
    names = sorted(d.name for d in store.chunks.documents())
    assert len(names) == 120 and names[0] == "a00.txt" and names[-1] == "b59.txt"
    assert len(store.vectors) == len(store.chunks) == 120


def _version(i: int, n: int) -> str:
    """Version ``n`` of document ``i``: filler sentences first, so offsets move between versions."""
    filler = " ".join(f"Inleiding {n}.{j} zonder belang." for j in range(n % 4))
    return (f"{filler} Het waterschap {i} verhoogde de dijk met {n + 10} centimeter in versie {n}. "
            f"De provincie betaalde {n * 3 + i} miljoen euro voor het project.").strip()


def test_answers_cite_their_snapshot_while_another_thread_updates(cfg, fake_embedder, tmp_path, monkeypatch):
    from rag import Assistant
    import rag.assistant as assistant_mod

    docs = tmp_path / "docs"
    for i in range(4):
        _write(docs, f"dijk{i}.txt", _version(i, 0))
    c = cfg.with_overrides(mode="extractive", refuse_below=0.0, require_question_terms=False)
    a = Assistant(c, embedder=fake_embedder)
    a.ingest([docs])
    used = []
    real_select = assistant_mod.evidence.select

    def recording_select(query, qvec, hits, store, *rest, **kw):
        used.append(store)  # the snapshot this question is answered from
        return real_select(query, qvec, hits, store, *rest, **kw)

    monkeypatch.setattr(assistant_mod.evidence, "select", recording_select)
    stop, errors = threading.Event(), []

    def updater():
        try:
            for n in range(1, 13):
                for i in range(4):
                    _write(docs, f"dijk{i}.txt", _version(i, n))
                if n % 3 == 0:
                    _write(docs, f"extra{n}.txt", _version(10 + n, n))
                a.ingest([docs])
                if n % 4 == 0:  # extra3, extra6, extra9 go again
                    victim = f"extra{3 * (n // 4)}.txt"
                    (docs / victim).unlink()
                    assert a.remove([victim])[0]
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
        finally:
            stop.set()

    t = threading.Thread(target=updater)
    t.start()
    checked = answers = 0
    questions = ["Met hoeveel centimeter verhoogde het waterschap de dijk?",
                 "Hoeveel miljoen euro betaalde de provincie voor het project?"]
    while not stop.is_set() or answers < 10:
        used.clear()
        ans = a.ask(questions[answers % 2])
        answers += 1
        if ans.refused:
            continue
        assert len(used) == 1
        for cit in ans.citations:
            text = used[0].chunks.document_text(cit.doc_id)
            assert text[cit.start:cit.end] == cit.quote, (cit, text)
            checked += 1
    t.join(60)
    assert not errors, errors
    assert checked >= 10 and answers >= 10
    final = {d.name for d in a.documents()}
    assert {"dijk0.txt", "extra12.txt"} <= final and not {"extra3.txt", "extra6.txt", "extra9.txt"} & final
    assert "versie 12" in a.document_text(a.store.chunks.find_document("dijk0.txt").doc_id)
