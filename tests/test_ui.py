"""The Gradio app with the real models: API calls (incl. 20 concurrent) and a real headless Chromium."""

import shutil
import threading
from pathlib import Path

import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.model

XSS_NAME = "<img src=x onerror=alert(7)>.html"
QUESTION = "Hoeveel landen steunen Rutte volgens de NOS?"


@pytest.fixture(scope="module")
def server(seeded_store, real_cfg, real_embedder, tmp_path_factory):
    from rag import Assistant
    from ui.app import UIState, build_app
    from ui.render import CSS, JS

    idx = tmp_path_factory.mktemp("ui") / "index"
    shutil.copytree(real_cfg.index_dir, idx)
    cfg = real_cfg.with_overrides(index_dir=str(idx))
    state = UIState(Assistant(cfg, embedder=real_embedder))
    app = build_app(state)
    port = free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, css=CSS, js=JS, quiet=True)
    yield f"http://127.0.0.1:{port}/", state
    app.close()


def test_api_answer_with_citations(server):
    from gradio_client import Client

    url, _ = server
    d = Client(url, verbose=False).predict(QUESTION, "generate", 5, api_name="/answer")
    assert not d["refused"] and "28" in d["answer"]
    assert d["citations"] and "28 van de 32" in d["citations"][0]["quote"]
    assert d["timings"]["total_s"] > 0


def test_api_twenty_concurrent_questions(server):
    from gradio_client import Client

    url, _ = server
    client = Client(url, verbose=False)
    qs = [QUESTION, "Welke taken neemt de NAVO-missie in Irak over?", "Wie is de CEO van PostNL in de reflectiegroep?",
          "Wat zei Macron over de NAVO?"] * 5
    jobs = [client.submit(q, "extractive", 5, api_name="/answer") for q in qs]
    results = [j.result(timeout=300) for j in jobs]
    assert len(results) == 20
    assert all("answer" in r and r["question"] == q for r, q in zip(results, qs))
    assert sum(r["refused"] for r in results) == 0
    macron = [r for r in results if "Macron" in r["question"]]  # no source names him: the answer says so first
    assert len(macron) == 5 and all(r["answer"].startswith("De bronnen noemen ‘Macron’ niet; wel dit:") for r in macron)


@pytest.mark.browser
def test_browser_ask_click_citation_upload_and_xss(server, tmp_path, artifacts):
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path("/usr/bin/chromium").exists():
        pytest.fail("Debian chromium is missing: run bash scripts/test.sh (it installs it)")
    url, state = server
    docs = tmp_path / "up"
    docs.mkdir()
    (docs / "kluis.txt").write_text(
        "Het wachtwoord van de kluis is OKAPI-77. <script>window.__pwned = 1</script> "
        "<img src=x onerror=\"window.__pwned = 2\"> Dit document test of HTML inert blijft.", encoding="utf-8")
    (docs / XSS_NAME).write_text(
        "<html><body><p>De geheime vergadering is in Maastricht.</p><script>window.__pwned = 3</script>"
        "<img src=x onerror=\"window.__pwned = 4\"></body></html>", encoding="utf-8")
    dialogs = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(url)
        page.fill("#rag-question textarea", QUESTION)
        page.click("#rag-send")
        page.wait_for_selector("#rag-chat a.rag-cite", timeout=180_000)
        page.locator("#rag-chat a.rag-cite").first.click()
        card = page.locator(".rag-source.rag-active")
        card.wait_for(timeout=10_000)
        assert "28 van de 32" in card.locator(".rag-context mark.rag-hl").inner_text()
        page.screenshot(path=str(artifacts / "ui-answer.png"), full_page=True)

        page.get_by_role("tab", name="Documenten").click()
        page.set_input_files("#rag-upload input[type=file]", [str(docs / "kluis.txt"), str(docs / XSS_NAME)])
        page.click("#rag-ingest")
        page.wait_for_function("document.querySelector('#rag-upload-status') && "
                               "document.querySelector('#rag-upload-status').innerText.includes('kluis.txt')",
                               timeout=120_000)
        status = page.locator("#rag-upload-status").inner_text()
        assert "kluis.txt: geïndexeerd" in status and "onerror=alert(7)" in status  # shown as text
        assert page.locator("#rag-upload-status img").count() == 0  # the file name was not rendered as HTML

        page.get_by_role("tab", name="Chat").click()
        page.get_by_label("extractive").check()
        page.fill("#rag-question textarea", "Wat is het wachtwoord van de kluis?")
        page.click("#rag-send")
        page.wait_for_function("[...document.querySelectorAll('#rag-sources mark.rag-hl')]"
                               ".some(m => m.innerText.includes('OKAPI-77'))", timeout=60_000)
        page.locator("#rag-chat a.rag-cite").last.click()
        panel = page.locator("#rag-sources").inner_text()
        assert "<script>" in panel  # shown as text, not executed
        page.screenshot(path=str(artifacts / "ui-upload-xss.png"), full_page=True)
        assert page.evaluate("window.__pwned") is None
        assert dialogs == []
        browser.close()
