from rag.ingest import sentences
from rag.ingest.chunker import ChunkerConfig, chunk_document
from rag.ingest.clean import clean, normalize_space
from rag.ingest.loaders import load
from rag.types import Document
from tests.conftest import SEEDS


def _doc(text, name="x.txt"):
    return Document(doc_id="d1", path="/tmp/" + name, name=name, text=text)


def test_hyphenation_over_line_break_is_joined():
    ct = clean("Dit vereist een gemeen-\nschappelijke respons van de NAVO-\nlanden.")
    assert "gemeenschappelijke respons" in ct.text
    assert "NAVO-landen" in ct.text  # capital before the hyphen: a real compound hyphen


def test_parliamentary_footer_lines_are_dropped():
    raw = (SEEDS / "004_b1d8a65b01473dfa.txt").read_text(encoding="utf-8")
    ct = clean(raw)
    assert "kst-28676-339" not in ct.text
    assert "ISSN" not in ct.text
    assert "vergaderjaar 2019–2020" not in ct.text
    assert "welke additionele steunmaatregelen wenselijk zijn" in ct.text


def test_repeated_running_headers_are_dropped():
    page = "Kamerbrief over de NAVO\nTekst van pagina {n} met inhoud.\n\n"
    raw = "".join(page.format(n=i) for i in range(4))
    ct = clean(raw)
    assert "Kamerbrief over de NAVO" not in ct.text
    assert ct.text.count("Tekst van pagina") == 4


def test_repeated_lines_of_unpaged_formats_are_content():
    # an HTML table's cells recur ("ja", numbers): no pages, so no running headers to drop
    raw = "Taak\nRuimte (MB)\n\nGNOME\n4075\nja\n\nKDE Plasma\n5900\nja\n\nXfce\n3192\nja\n\nLXDE\n3232\nja\n"
    assert "5900" not in clean(raw).text  # read as paged text, number-only lines look like page numbers
    ct = clean(raw, paged=False)
    assert "KDE Plasma 5900 ja" in ct.text and ct.text.count("ja") == 4
    html = chunk_document(_doc(raw, "taken.html"), ChunkerConfig(max_chars=600))
    assert any("5900" in c.text for c in html)
    assert not any("5900" in c.text for c in chunk_document(_doc(raw, "taken.txt"), ChunkerConfig(max_chars=600)))


def test_meta_line_becomes_date_and_title():
    ct = clean(" date 2022-04 NAVO: Rusland verlegt focus\n\nMoskou geeft niet op.")
    assert ct.date == "2022-04" and ct.title == "NAVO: Rusland verlegt focus"
    assert ct.text == "Moskou geeft niet op."


def test_whitespace_normalised_and_offsets_map_back():
    raw = "Eerste   zin\nloopt door.\n\n\nTweede\talinea."
    ct = clean(raw)
    assert ct.text == "Eerste zin loopt door.\n\nTweede alinea."
    for i, ch in enumerate(ct.text):
        if not ch.isspace():
            assert raw[ct.offsets[i]] == ch


def test_dutch_abbreviations_do_not_end_sentences():
    text = ("De ministers spraken o.a. over Irak. Zie bijv. Kamerstuk 28 676, nr. 338 voor details. "
            "Mr. Rutte en drs. Bijleveld waren er, d.w.z. ook art. 5 kwam aan bod. "
            "De brief is getekend door A.Th.B. Bijleveld-Schouten. Daarna volgde het debat.")
    got = sentences.split(text)
    assert got == [
        "De ministers spraken o.a. over Irak.",
        "Zie bijv. Kamerstuk 28 676, nr. 338 voor details.",
        "Mr. Rutte en drs. Bijleveld waren er, d.w.z. ook art. 5 kwam aan bod.",
        "De brief is getekend door A.Th.B. Bijleveld-Schouten.",
        "Daarna volgde het debat.",
    ]


def test_sentence_split_handles_quotes_and_questions():
    got = sentences.split('"Het is oorlog." Zei hij dat? Ja! 28 van de 32 landen steunen Rutte.')
    assert got == ['"Het is oorlog."', "Zei hij dat?", "Ja!", "28 van de 32 landen steunen Rutte."]


def test_chunks_recover_their_text_from_the_file():
    for f in sorted(SEEDS.iterdir()):
        doc = load(f)
        raw = f.read_text(encoding="utf-8-sig")
        assert doc.text == raw
        chunks = chunk_document(doc, ChunkerConfig(max_chars=500, overlap_sentences=1))
        assert chunks
        for c in chunks:
            span = clean(raw[c.start : c.end]).text
            assert normalize_space(span) == normalize_space(c.text), (f.name, c.chunk_id)
            for s in c.sentences:
                assert normalize_space(clean(raw[s.start : s.end]).text) == normalize_space(s.text)


def test_chunk_size_overlap_and_stable_ids():
    text = " ".join(f"Dit is zin nummer {i} over de NAVO-top in Brussel." for i in range(40))
    doc = _doc(text)
    cs = chunk_document(doc, ChunkerConfig(max_chars=200, overlap_sentences=1))
    assert len(cs) > 5
    assert all(len(c.text) <= 200 for c in cs)
    for a, b in zip(cs, cs[1:]):
        assert a.sentences[-1].text == b.sentences[0].text  # one sentence of overlap
    assert [c.chunk_id for c in cs] == [c.chunk_id for c in chunk_document(doc, ChunkerConfig(200, 1))]
    assert cs[0].chunk_id == "d1-0000"


def test_over_long_sentence_is_split_on_words():
    doc = _doc("woord " * 400)
    cs = chunk_document(doc, ChunkerConfig(max_chars=300, overlap_sentences=0))
    assert len(cs) >= 8 and all(len(c.text) <= 300 for c in cs)
