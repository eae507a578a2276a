"""Markdown export of an answer with its sources: one renderer (Answer.to_markdown) behind
`rag ask --format md` and the UI's download button."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import main as cli
from rag.types import Answer, Citation, Final

ANSWER = Answer(
    question="Hoeveel landen  steunen Rutte?",
    text="28 van de 32 landen steunen Rutte [1]. Roemenië heeft een eigen kandidaat [2].",
    citations=[Citation(n=1, quote="Bronnen meldden eerder aan de NOS dat 28 van de 32 landen Rutte steunen.",
                        doc="rutte.txt", doc_id="r1", chunk_id="r1-0000", title="Rutte in juli de nieuwe baas?",
                        date="2024-04", start=120, end=191),
               Citation(n=2, quote="Roemenië heeft met president Iohannis\neen eigen kandidaat.", doc="ro.txt",
                        doc_id="r2", chunk_id="r2-0000", start=0, end=58)])

MARKDOWN = """**Vraag:** Hoeveel landen steunen Rutte?

28 van de 32 landen steunen Rutte [1]. Roemenië heeft een eigen kandidaat [2].

### Bronnen

1. **Rutte in juli de nieuwe baas?** — `rutte.txt`, 2024-04, tekens 120–191
   > Bronnen meldden eerder aan de NOS dat 28 van de 32 landen Rutte steunen.
2. **ro.txt** — `ro.txt`, tekens 0–58
   > Roemenië heeft met president Iohannis
   > een eigen kandidaat.
"""


def test_markdown_of_an_answer_with_sources():
    assert ANSWER.to_markdown() == MARKDOWN


def test_markdown_of_a_refusal_in_english():
    a = Answer(question="What did Macron say?", text="The sources do not say.", refused=True, language="en",
               refusal_reason="'macron' does not occur in the documents")
    assert a.to_markdown() == ("**Question:** What did Macron say?\n\nThe sources do not say.\n\n"
                               "*Not answered from the sources: 'macron' does not occur in the documents*\n")


@pytest.fixture
def runner(monkeypatch, fake_embedder):
    import rag.stores.embedder

    monkeypatch.setattr(rag.stores.embedder, "get_embedder", lambda cfg: fake_embedder)
    return CliRunner()


@pytest.fixture
def index(runner, tmp_path):
    d = tmp_path / "docs"
    d.mkdir()
    (d / "rutte.txt").write_text(" date 2024-04 Rutte in juli de nieuwe baas?\n\nBronnen meldden eerder aan de NOS "
                                 "dat 28 van de 32 landen Rutte steunen.", encoding="utf-8")
    idx = str(tmp_path / "idx")
    assert runner.invoke(cli.app, ["ingest", str(d), "--index", idx]).exit_code == 0
    return idx


def test_cli_format_md_prints_the_same_markdown(runner, index, monkeypatch):
    import rag

    monkeypatch.setattr(rag.Assistant, "ask_stream", lambda self, q, **kw: iter([Final(ANSWER)]))
    r = runner.invoke(cli.app, ["ask", "Hoeveel landen steunen Rutte?", "--index", index, "--format", "md"])
    assert r.exit_code == 0 and r.output == MARKDOWN


def test_cli_format_md_on_a_real_answer(runner, index):
    args = ["ask", "Hoeveel landen steunen Rutte?", "--index", index, "--mode", "extractive"]
    md = runner.invoke(cli.app, [*args, "--format", "md"]).output
    d = json.loads(runner.invoke(cli.app, [*args, "--format", "json"]).output)
    c = d["citations"][0]
    assert md.startswith("**Vraag:** Hoeveel landen steunen Rutte?\n\n" + d["answer"] + "\n\n### Bronnen\n\n")
    assert f"1. **Rutte in juli de nieuwe baas?** — `rutte.txt`, 2024-04, tekens {c['start']}–{c['end']}\n" in md
    assert f"   > {c['quote']}\n" in md


def test_cli_bad_format_is_one_line(runner, index):
    r = runner.invoke(cli.app, ["ask", "x", "--index", index, "--format", "xml"])
    assert r.exit_code == 1 and r.output.strip() == "error: --format: 'xml' is not one of text, json, md"


def test_ui_download_holds_the_markdown_and_filters_apply(tmp_path, fake_embedder):
    """The chat endpoint's last output is the download file; its text is Answer.to_markdown()."""
    from gradio_client import Client

    from rag import Assistant
    from rag.config import RagConfig
    from rag.ingest.pipeline import ingest
    from tests.conftest import LiveServer
    from tests.test_openai_api import DOCS
    from ui.app import create_app

    def file(update):  # the client returns gr.update(...) outputs as dicts
        return update["value"] if isinstance(update, dict) else update

    d = tmp_path / "docs"
    d.mkdir()
    for name, text in DOCS.items():
        (d / name).write_text(text, encoding="utf-8")
    cfg = RagConfig.from_env(index_dir=str(tmp_path / "index"), refuse_below=0.0, mode="extractive")
    ingest([d], cfg, fake_embedder, progress=False)
    a = Assistant(cfg, embedder=fake_embedder, generator=None)
    q = "Welke taken neemt de missie in Irak over?"
    with LiveServer(lambda port: create_app(a)) as url:
        client = Client(url + "/", verbose=False, download_files=str(tmp_path / "dl"))
        chat, sources, info, export = client.predict(q, [], "extractive", 5, [], "", "", api_name="/chat")
        expected = a.ask(q, mode="extractive", k=5).to_markdown()
        assert Path(file(export)).read_text(encoding="utf-8") == expected and "irak.txt" in expected
        # a document filter that leaves only rutte.txt: the answer cites no Irak text
        chat, _, _, export = client.predict(q, [], "extractive", 5, ["rutte.txt"], "", "", api_name="/chat")
        assert "irak.txt" not in Path(file(export)).read_text(encoding="utf-8")
        # a date range without documents: a clear message in the chat, nothing to download
        chat, _, _, export = client.predict(q, [], "extractive", 5, [], "2030", "", api_name="/chat")
        assert "no document matches the filter (since 2030)" in str(chat[-1]["content"]) and file(export) is None
