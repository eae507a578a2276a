import pytest

from rag.ingest.loaders import LoadError, expand_paths, load


def _pdf(path, pages):
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=A4)
    for lines in pages:
        y = 800
        for line in lines:
            c.drawString(72, y, line)
            y -= 16
        c.showPage()
    c.save()


def test_txt_and_md(tmp_path):
    (tmp_path / "a.txt").write_text(" date 2021-05 Titel van het stuk\n\nDe tekst.", encoding="utf-8")
    d = load(tmp_path / "a.txt")
    assert d.title == "Titel van het stuk" and d.date == "2021-05" and d.name == "a.txt"
    (tmp_path / "b.md").write_text("# Kop\n\nDe NAVO bestaat 75 jaar.", encoding="utf-8")
    d = load(tmp_path / "b.md")
    assert d.title == "Kop" and "75 jaar" in d.text


def test_cp1252_text_is_decoded(tmp_path):
    (tmp_path / "c.txt").write_bytes("Geïnformeerd over coöperatieve veiligheid".encode("cp1252"))
    assert "coöperatieve" in load(tmp_path / "c.txt").text


def test_html_drops_scripts_and_keeps_text(tmp_path):
    (tmp_path / "p.html").write_text(
        "<html><head><title>Nieuws &amp; zo</title><style>p{}</style></head><body><h1>Kop</h1>"
        "<p>Eerste alinea.</p><script>alert(1)</script><p>Tweede&nbsp;alinea.</p></body></html>",
        encoding="utf-8")
    d = load(tmp_path / "p.html")
    assert d.title == "Nieuws & zo"
    assert "alert" not in d.text and "p{}" not in d.text
    assert "Eerste alinea." in d.text and "Tweede" in d.text


def test_pdf_pages_and_hyphenation(tmp_path):
    f = tmp_path / "brief.pdf"
    _pdf(f, [["De ministers spraken over een gemeen-", "schappelijke respons op de crisis."],
             ["Nederland steunt deze insteek van harte."]])
    d = load(f)
    assert "gemeen-" in d.text and "insteek" in d.text
    from rag.ingest.chunker import chunk_document

    text = " ".join(c.text for c in chunk_document(d))
    assert "gemeenschappelijke respons" in text


def test_docx(tmp_path):
    import docx

    f = tmp_path / "verslag.docx"
    doc = docx.Document()
    doc.core_properties.title = "Verslag NAVO-top"
    doc.add_paragraph("De bijeenkomst vond plaats op 2 april 2020.")
    doc.add_paragraph("Noord-Macedonië was voor het eerst aanwezig.")
    doc.save(f)
    d = load(f)
    assert d.title == "Verslag NAVO-top"
    assert "Noord-Macedonië" in d.text and "2 april 2020" in d.text


@pytest.mark.parametrize("name,content,reason", [
    ("leeg.txt", b"", "empty"),
    ("kapot.pdf", b"%PDF-1.4 this is not really a pdf", "not a readable PDF"),
    ("kapot.docx", b"PK\x03\x04 nonsense", "not a readable DOCX"),
    ("data.xlsx", b"abc", "unsupported file type"),
    ("bin.txt", b"\x00\x01\x02binary", "binary"),
])
def test_bad_files_raise_clear_errors(tmp_path, name, content, reason):
    f = tmp_path / name
    f.write_bytes(content)
    with pytest.raises(LoadError) as e:
        load(f)
    assert name in str(e.value) and reason in str(e.value)


def test_missing_file_and_folder_expansion(tmp_path):
    with pytest.raises(LoadError, match="file not found"):
        load(tmp_path / "nope.txt")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.txt").write_text("x")
    (tmp_path / "sub" / "b.jpg").write_text("x")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "c.txt").write_text("x")
    assert [p.name for p in expand_paths([tmp_path])] == ["a.txt"]


def test_headings_are_found_with_offsets_and_give_each_chunk_its_section(tmp_path):
    from rag.ingest.chunker import ChunkerConfig, chunk_document, section_at

    (tmp_path / "h.html").write_text(
        "<html><head><title>Handleiding</title></head><body><h1>Handleiding</h1><p>Inleiding.</p>"
        "<h2>Partitioneren</h2><p>Over schijven.</p><h3>Versleutelde <b>volumes</b></h3>"
        "<p>Grootte van de sleutel: 256.</p><h2>Software</h2><p>Kies taken.</p></body></html>", encoding="utf-8")
    d = load(tmp_path / "h.html")
    assert [(lv, h) for _, lv, h in d.headings] == [(1, "Handleiding"), (2, "Partitioneren"),
                                                     (3, "Versleutelde volumes"), (2, "Software")]
    assert all(d.text[at:at + len(h)] == h for at, _, h in d.headings)  # offsets into the document text
    at = {h: a for a, _, h in d.headings}
    key = d.text.index("Grootte")
    assert section_at(d.headings, key, d.title) == "Partitioneren › Versleutelde volumes"  # h1 = the title: left out
    assert section_at(d.headings, d.text.index("Kies"), d.title) == "Software"  # a new h2 closes the h3
    assert section_at(d.headings, at["Partitioneren"], d.title) == "Partitioneren"  # a heading starts its section
    assert section_at(d.headings, 0, "") == "Handleiding"
    chunks = chunk_document(d, ChunkerConfig(max_chars=40, overlap_sentences=0))
    by_text = {c.text.split()[0]: c for c in chunks}
    assert by_text["Grootte"].section == "Partitioneren › Versleutelde volumes"
    assert by_text["Grootte"].embed_text() == "Handleiding\nPartitioneren › Versleutelde volumes\n" + by_text["Grootte"].text
    (tmp_path / "m.md").write_text("# Gids\n\nTekst.\n\n## Netwerk ##\n\nGeen DHCP.\n", encoding="utf-8")
    m = load(tmp_path / "m.md")
    assert [(m.text[a:a + len(h)], lv) for a, lv, h in m.headings] == [("Gids", 1), ("Netwerk", 2)]
    assert load(tmp_path / "m.md").headings == m.headings
    (tmp_path / "t.txt").write_text("# geen kop in platte tekst\n\nTekst.", encoding="utf-8")
    assert load(tmp_path / "t.txt").headings == []


def test_embed_text_leaves_out_headings_the_text_holds():
    from rag.types import embed_text

    assert embed_text("Gids", "Netwerk", "Geen DHCP.") == "Gids\nNetwerk\nGeen DHCP."
    assert embed_text("Gids", "Netwerk", "Netwerk\n\nGeen DHCP.") == "Gids\nNetwerk\n\nGeen DHCP."
    assert embed_text("", "", "Tekst.") == "Tekst."
