"""The OpenAI-compatible API (/v1) driven by the official ``openai`` client against a real server on a free
127.0.0.1 port: fake embedder + scripted generator over a tiny corpus, so every answer is known."""

import json

import httpx
import openai
import pytest

from rag import Assistant
from rag.answer.prompt import REFUSAL
from rag.ingest.pipeline import ingest
from tests.conftest import LiveServer
from tests.fakes import ScriptedGenerator
from ui.openai_api import ApiError, create_api, parse_request

KEY = "test-key-123"
DOCS = {
    "rutte.txt": " date 2024-04 Rutte in juli de nieuwe baas?\n\nDemissionair premier Rutte heeft de steun van de "
                 "meeste landen. Bronnen meldden eerder aan de NOS dat 28 van de 32 landen Rutte steunen.\n\n"
                 "Roemenië heeft met president Iohannis een eigen kandidaat.",
    "irak.txt": " date 2021-02 NAVO-missie in Irak\n\nMinisters stemden in met een uitbreiding van de NAVO-missie in "
                "Irak. Zodra de situatie het toestaat neemt de missie trainings- en adviestaken over van de anti-ISIS "
                "coalitie.",
}


@pytest.fixture(scope="module")
def assistant(tmp_path_factory):
    from rag.config import RagConfig
    from tests.fakes import FakeEmbedder

    tmp = tmp_path_factory.mktemp("api")
    d = tmp / "docs"
    d.mkdir()
    for name, text in DOCS.items():
        (d / name).write_text(text, encoding="utf-8")
    cfg = RagConfig.from_env(index_dir=str(tmp / "index"), api_key=KEY, ui_auth="", refuse_below=0.0,
                             prompt_margin=1.0, strategy="free", generator="qwen-0.5b", require_question_terms=True)
    emb = FakeEmbedder()
    ingest([d], cfg, emb, progress=False)
    return Assistant(cfg, embedder=emb, generator=ScriptedGenerator([]))


@pytest.fixture(scope="module")
def base_url(assistant):
    with LiveServer(lambda port: create_api(assistant)) as url:
        yield url


@pytest.fixture
def client(base_url):
    return openai.OpenAI(base_url=base_url + "/v1", api_key=KEY, max_retries=0, timeout=30)


def script(assistant, *replies) -> ScriptedGenerator:
    gen = ScriptedGenerator(list(replies))
    assistant.with_generator(gen)
    return gen


def test_models_lists_the_generator_and_extractive(client):
    assert [m.id for m in client.models.list().data] == ["qwen-0.5b", "extractive"]
    assert client.models.retrieve("extractive").id == "extractive"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")


def test_answer_with_citations(client, assistant):
    gen = script(assistant, "28 van de 32 landen steunen Rutte [3].")
    r = client.chat.completions.create(model="qwen-0.5b",
                                       messages=[{"role": "system", "content": "Wees kort."},
                                                 {"role": "user", "content": "Hoeveel landen steunen Rutte?"}])
    msg = r.choices[0].message
    assert r.object == "chat.completion" and r.model == "qwen-0.5b" and r.choices[0].finish_reason == "stop"
    assert msg.role == "assistant" and msg.content == "28 van de 32 landen steunen Rutte [1]."
    assert msg.refused is False and msg.mode == "generate" and len(gen.prompts) == 1
    (c,) = msg.citations
    assert c["n"] == 1 and c["doc"] == "rutte.txt" and c["date"] == "2024-04"
    assert c["title"] == "Rutte in juli de nieuwe baas?"
    assert assistant.document_text(c["doc_id"])[c["start"]:c["end"]] == c["quote"]
    assert "28 van de 32 landen" in c["quote"]


def test_streaming_sends_chunks_then_citations_then_done(client, assistant, base_url):
    script(assistant, "28 van de 32 landen steunen Rutte [1].")
    chunks = list(client.chat.completions.create(
        model="qwen-0.5b", stream=True, messages=[{"role": "user", "content": "Hoeveel landen steunen Rutte?"}]))
    assert all(ch.object == "chat.completion.chunk" and ch.id == chunks[0].id for ch in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks)
    assert text == "28 van de 32 landen steunen Rutte [1]."
    last = chunks[-1].choices[0]
    assert last.finish_reason == "stop" and last.delta.refused is False
    assert [c["doc"] for c in last.delta.citations] == ["rutte.txt"]
    assert all(ch.choices[0].finish_reason is None for ch in chunks[:-1])
    # the raw event stream ends with the OpenAI terminator
    script(assistant, "28 van de 32 landen steunen Rutte [1].")
    raw = httpx.post(base_url + "/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}"}, timeout=30,
                     json={"model": "x", "stream": True, "messages": [{"role": "user", "content": "Hoeveel landen "
                                                                                                  "steunen Rutte?"}]})
    assert raw.headers["content-type"].startswith("text/event-stream")
    events = [e for e in raw.text.split("\n\n") if e]
    assert events[-1] == "data: [DONE]" and all(e.startswith("data: ") for e in events)
    assert json.loads(events[-2][6:])["choices"][0]["delta"]["citations"][0]["doc"] == "rutte.txt"


def test_follow_up_uses_the_earlier_turns(client, assistant):
    gen = script(assistant, "De missie neemt trainings- en adviestaken over [1].")
    r = client.chat.completions.create(model="qwen-0.5b", messages=[
        {"role": "user", "content": "Welke missie wordt uitgebreid?"},
        {"role": "assistant", "content": "De NAVO-missie in Irak wordt uitgebreid [1]."},
        {"role": "user", "content": [{"type": "text", "text": "En welke taken neemt die over?"}]}])
    msg = r.choices[0].message
    assert "Vervolg op de vraag: Welke missie wordt uitgebreid?" in gen.prompts[0][1]["content"]
    assert not msg.refused and "trainings" in msg.content and msg.citations[0]["doc"] == "irak.txt"


def test_refusal_is_a_normal_answer_with_a_flag(client, assistant):
    gen = script(assistant, "Macron steunt Rutte [1].")
    r = client.chat.completions.create(model="qwen-0.5b",
                                       messages=[{"role": "user", "content": "Wat zei Macron over Rutte?"}])
    msg = r.choices[0].message
    assert msg.refused is True and "macron" in msg.refusal_reason and msg.content == REFUSAL["nl"]
    assert msg.citations == [] and gen.prompts == []  # refused before the model was asked
    chunks = list(client.chat.completions.create(
        model="qwen-0.5b", stream=True, messages=[{"role": "user", "content": "Wat zei Macron over Rutte?"}]))
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks) == REFUSAL["nl"]
    assert chunks[-1].choices[0].delta.refused is True


def test_extractive_model_and_filters(client, assistant):
    gen = script(assistant)
    r = client.chat.completions.create(model="extractive", messages=[
        {"role": "user", "content": "Welke taken neemt de missie in Irak over?"}])
    msg = r.choices[0].message
    assert msg.mode == "extractive" and not msg.refused and gen.prompts == []
    assert msg.citations and {c["doc"] for c in msg.citations} == {"irak.txt"}
    # a filter keeps retrieval inside the chosen documents: the Irak question now finds only rutte.txt
    r = client.chat.completions.create(model="extractive", extra_body={"filters": {"docs": ["rutte*"]}},
                                       messages=[{"role": "user", "content": "Welke taken neemt de missie over?"}])
    assert {c["doc"] for c in r.choices[0].message.citations} <= {"rutte.txt"}
    r = client.chat.completions.create(model="extractive", extra_body={"filters": {"since": "2024"}},
                                       messages=[{"role": "user", "content": "Hoeveel van de 32 landen steunen Rutte?"}])
    assert {c["doc"] for c in r.choices[0].message.citations} == {"rutte.txt"}


@pytest.mark.parametrize("extra, fragment", [
    ({"filters": {"docs": ["geen.txt"]}}, "no document matches 'geen.txt'"),
    ({"filters": {"until": "2020"}}, "no document matches the filter"),
    ({"filters": {"since": "2024-13"}}, "since: '2024-13' is not a date"),
    ({"filters": {"docs": "x", "from": 1}}, "unknown field from"),
    ({"mode": "poetry"}, "mode: 'poetry' is not one of generate, extractive"),
])
def test_bad_request_fields_are_400(client, extra, fragment):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="extractive", extra_body=extra,
                                       messages=[{"role": "user", "content": "Hoeveel landen steunen Rutte?"}])
    assert e.value.status_code == 400 and fragment in e.value.message
    assert e.value.body["type"] == "invalid_request_error"


@pytest.mark.parametrize("messages", [
    [{"role": "assistant", "content": "Hallo"}],
    [{"role": "user", "content": "   "}],
    [],
    [{"role": "wizard", "content": "Hoi"}],
    [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
])
def test_no_usable_question_is_400(client, messages):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="extractive", messages=messages)
    assert "messages" in e.value.message


def test_wrong_types_and_bad_json_are_400_without_traceback(base_url):
    h = {"Authorization": f"Bearer {KEY}"}
    for body in ({"model": 3, "messages": [{"role": "user", "content": "x"}]},
                 {"model": "extractive", "messages": "Hoeveel?"},
                 {"model": "extractive", "stream": "yes", "messages": [{"role": "user", "content": "x"}]},
                 {"model": "extractive", "messages": [{"role": "user", "content": 5}]},
                 [1, 2]):
        r = httpx.post(base_url + "/v1/chat/completions", json=body, headers=h, timeout=30)
        assert r.status_code == 400 and set(r.json()["error"]) == {"message", "type", "param", "code"}
    r = httpx.post(base_url + "/v1/chat/completions", content=b"{not json", headers=h, timeout=30)
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]
    assert "Traceback" not in r.text
    r = httpx.get(base_url + "/v1/completions", headers=h, timeout=30)
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_url"


def test_wrong_or_missing_key_is_401(base_url):
    bad = openai.OpenAI(base_url=base_url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as e:
        bad.chat.completions.create(model="extractive", messages=[{"role": "user", "content": "Hoeveel?"}])
    assert e.value.status_code == 401 and e.value.body["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
    r = httpx.get(base_url + "/v1/models", timeout=30)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"


def test_failure_while_streaming_is_reported_in_the_stream(client, assistant):
    class Broken(ScriptedGenerator):
        def generate(self, messages, max_tokens=128, stream=False):
            raise RuntimeError("model crashed")

    assistant.with_generator(Broken([]))
    with pytest.raises(openai.APIError) as e:
        list(client.chat.completions.create(
            model="qwen-0.5b", stream=True, messages=[{"role": "user", "content": "Hoeveel landen steunen Rutte?"}]))
    assert "answering failed (RuntimeError)" in str(e.value)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="qwen-0.5b",
                                       messages=[{"role": "user", "content": "Hoeveel landen steunen Rutte?"}])


def test_api_is_closed_when_the_ui_needs_a_login_and_no_key_is_set(assistant):
    from fastapi.testclient import TestClient

    a = Assistant(assistant.cfg.with_overrides(api_key="", ui_auth="jan:geheim"), store=assistant.store,
                  embedder=assistant.embedder)
    r = TestClient(create_api(a)).get("/v1/models")
    assert r.status_code == 401 and "RAG_API_KEY" in r.json()["error"]["message"]
    open_api = Assistant(assistant.cfg.with_overrides(api_key="", ui_auth=""), store=assistant.store,
                         embedder=assistant.embedder)
    assert TestClient(create_api(open_api)).get("/v1/models").status_code == 200


def test_parse_request_maps_messages_to_question_and_history():
    req = parse_request({"model": "extractive", "messages": [
        {"role": "system", "content": "x"}, {"role": "user", "content": "Vraag 1"},
        {"role": "assistant", "content": "Antwoord 1"}, {"role": "user", "content": " Vraag 2 "}]}, "qwen-1.5b")
    assert req.question == "Vraag 2" and req.mode == "extractive" and not req.stream
    assert req.history == [{"role": "user", "content": "Vraag 1"}, {"role": "assistant", "content": "Antwoord 1"}]
    assert parse_request({"messages": [{"role": "user", "content": "q"}]}, "qwen-1.5b").mode == "generate"
    with pytest.raises(ApiError) as e:
        parse_request({"messages": [{"role": "user", "content": "q"}], "n": 2}, "m")
    assert e.value.status == 400 and e.value.param == "n"


def test_ui_and_api_share_one_server(assistant):
    """``rag serve``'s app: Gradio at / and the API at /v1 in one process on one Assistant."""
    from ui.app import create_app

    with LiveServer(lambda port: create_app(assistant)) as url:
        page = httpx.get(url + "/", timeout=30)
        assert page.status_code == 200 and "<html" in page.text.lower()
        c = openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0)
        assert [m.id for m in c.models.list().data] == ["qwen-0.5b", "extractive"]
        r = c.chat.completions.create(model="extractive",
                                      messages=[{"role": "user", "content": "Hoeveel van de 32 landen steunen Rutte?"}])
        assert r.choices[0].message.citations[0]["doc"] == "rutte.txt"
