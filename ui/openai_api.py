"""OpenAI-compatible chat API, served by ``rag serve`` next to the Gradio UI (same process, same Assistant).

Routes (all under ``/v1``):
- ``GET /v1/models``: the configured generator and ``extractive``. The ``model`` of a request picks
  the answer mode: ``"extractive"`` quotes the best source sentences, any other name generates.
- ``POST /v1/chat/completions``: ``messages`` as in OpenAI's API; the last one is the question (role
  ``user``), earlier ``user``/``assistant`` turns are the conversation history (follow-ups are resolved
  against them); ``system`` messages are ignored (the assistant has its own instructions). The answer
  carries ``[n]`` markers in ``content``; extra fields on ``choices[0].message`` (and, when streaming,
  on the ``delta`` of the last chunk): ``citations`` (``[{n, doc, doc_id, chunk_id, start, end, quote,
  title, date}]``, offsets into the original document text), ``refused`` (true when the sources do not
  hold the answer; ``content`` then says so in the question's language), ``refusal_reason`` and
  ``mode`` (``generate`` or ``extractive``, e.g. when no generator is installed). Extra request fields:
  ``filters: {docs: [name or glob, ...], since: DATE, until: DATE}`` (DATE = YYYY, YYYY-MM or
  YYYY-MM-DD) restricts retrieval to those documents, ``mode`` overrides the model-picked mode.
  ``stream: true`` sends ``chat.completion.chunk`` server-sent events ending with ``data: [DONE]``;
  streamed content is the verified answer only (model text that fails citation checks is never sent).
- Errors are OpenAI-style JSON ``{"error": {"message", "type", "param", "code"}}``: 400 for bad input,
  401 for a missing or wrong bearer token (``api_key`` / ``RAG_API_KEY``; when the UI requires a login
  and no key is set, the API is closed), 404 for unknown routes or models.

With the official client::

    client = OpenAI(base_url="http://127.0.0.1:7860/v1", api_key="KEY")
    r = client.chat.completions.create(model="extractive", messages=[{"role": "user", "content": "..."}],
                                       extra_body={"filters": {"docs": ["*.pdf"], "since": "2022"}})
    r.choices[0].message.content, r.choices[0].message.citations
"""

from __future__ import annotations

import hmac
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from rag import Assistant
from rag.config import MODES
from rag.types import Answer, Filter, FilterError, Final

log = logging.getLogger("ragnl.api")

EXTRACTIVE_MODEL = "extractive"
ROLES = ("system", "developer", "user", "assistant", "tool")


class ApiError(Exception):
    """An error answered as OpenAI-style JSON with an HTTP status."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 type_: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.type = status, message, param, code, type_

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


@dataclass
class ChatRequest:
    """A validated chat-completion request in the Assistant's terms."""

    model: str
    question: str
    history: list[dict] = field(default_factory=list)
    mode: str = "generate"
    stream: bool = False
    filter: Filter = field(default_factory=Filter)


def _text(content: Any, param: str) -> str:
    """Message content as text: a string, or a list of ``{"type": "text", "text": ...}`` parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for i, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise ApiError(400, f"{param}[{i}]: only text content parts are supported", f"{param}[{i}]")
            out.append(part["text"])
        return "\n".join(out)
    raise ApiError(400, f"{param}: expected a string or a list of text parts", param)


def parse_request(body: Any, default_model: str) -> ChatRequest:
    """Validate a /v1/chat/completions body; raises ApiError(400) naming the field and the problem."""
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    model = body.get("model", default_model)
    if not isinstance(model, str) or not model.strip():
        raise ApiError(400, "model: expected a model name (see GET /v1/models)", "model")
    mode = body.get("mode")
    if mode is None:
        mode = "extractive" if model.strip() == EXTRACTIVE_MODEL else "generate"
    elif mode not in MODES:
        raise ApiError(400, f"mode: '{mode}' is not one of {', '.join(MODES)}", "mode")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError(400, "stream: expected true or false", "stream")
    n = body.get("n", 1)
    if n not in (1, None):
        raise ApiError(400, "n: only one choice per request is supported", "n")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages: expected a non-empty list of messages", "messages")
    turns = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise ApiError(400, f"messages[{i}]: expected an object with role and content", f"messages[{i}]")
        role = m.get("role")
        if role not in ROLES:
            raise ApiError(400, f"messages[{i}].role: '{role}' is not one of {', '.join(ROLES)}",
                           f"messages[{i}].role")
        turns.append((role, _text(m.get("content"), f"messages[{i}].content")))
    role, question = turns[-1]
    if role != "user" or not question.strip():
        raise ApiError(400, "messages: the last message must be a user message with the question", "messages")
    history = [{"role": r, "content": t} for r, t in turns[:-1] if r in ("user", "assistant") and t.strip()]
    return ChatRequest(model=model.strip(), question=question.strip(), history=history, mode=mode,
                       stream=stream, filter=parse_filters(body.get("filters")))


def parse_filters(raw: Any) -> Filter:
    if raw is None:
        return Filter()
    if not isinstance(raw, dict):
        raise ApiError(400, "filters: expected an object {docs, since, until}", "filters")
    unknown = sorted(set(raw) - {"docs", "since", "until"})
    if unknown:
        raise ApiError(400, f"filters: unknown field {', '.join(unknown)} (expected docs, since, until)", "filters")
    docs = raw.get("docs") or []
    if isinstance(docs, str):
        docs = [docs]
    if not isinstance(docs, list) or not all(isinstance(d, str) for d in docs):
        raise ApiError(400, "filters.docs: expected a list of file names or globs", "filters.docs")
    for key in ("since", "until"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise ApiError(400, f"filters.{key}: expected a date string YYYY, YYYY-MM or YYYY-MM-DD",
                           f"filters.{key}")
    try:
        return Filter(docs=tuple(docs), since=raw.get("since") or "", until=raw.get("until") or "")
    except ValueError as e:
        raise ApiError(400, f"filters: {e}", "filters") from None


def citations(answer: Answer) -> list[dict]:
    keys = ("n", "doc", "doc_id", "chunk_id", "start", "end", "quote", "title", "date")
    return [{k: getattr(c, k) for k in keys} for c in answer.citations]


def _extras(answer: Answer) -> dict:
    return {"citations": citations(answer), "refused": answer.refused, "refusal_reason": answer.refusal_reason,
            "mode": answer.mode, "unmentioned": answer.unmentioned}


def completion(answer: Answer, model: str, cid: str, created: int) -> dict:
    """A ``chat.completion`` object for a finished answer."""
    message = {"role": "assistant", "content": answer.text, "refusal": None, **_extras(answer)}
    return {"id": cid, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}]}


def chunk(delta: dict, model: str, cid: str, created: int, finish: str | None = None) -> dict:
    return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}


def _sse(obj: dict | str) -> str:
    return f"data: {obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False)}\n\n"


def stream_events(assistant: Assistant, req: ChatRequest, doc_ids: list[str] | None, cid: str,
                  created: int) -> Iterator[str]:
    """Server-sent events: the role, the verified answer text, then a closing chunk with citations."""
    yield _sse(chunk({"role": "assistant", "content": ""}, req.model, cid, created))
    try:
        final = None
        for event in assistant.ask_stream(req.question, history=req.history or None, mode=req.mode,
                                          doc_ids=doc_ids):
            if isinstance(event, Final):
                final = event.answer
        assert final is not None
    except Exception as e:  # headers are sent: report in-stream (the openai client raises on it)
        log.exception("streamed answer failed")
        yield _sse(ApiError(500, f"answering failed ({type(e).__name__})", type_="server_error").body())
        yield _sse("[DONE]")
        return
    if final.text:
        yield _sse(chunk({"content": final.text}, req.model, cid, created))
    yield _sse(chunk(_extras(final), req.model, cid, created, finish="stop"))
    yield _sse("[DONE]")


def create_api(assistant: Assistant) -> FastAPI:
    """A FastAPI app with the /v1 routes; ``ui.app`` mounts the Gradio UI onto it."""
    cfg = assistant.cfg
    started = int(time.time())
    api = FastAPI(title="ragnl", docs_url=None, redoc_url=None, openapi_url=None)

    generator = Path(cfg.generator).name  # a local model path is shown by its file name only

    def models() -> list[dict]:
        return [{"id": m, "object": "model", "created": started, "owned_by": "ragnl"}
                for m in dict.fromkeys((generator, EXTRACTIVE_MODEL))]

    def check_key(request: Request) -> None:
        if not cfg.api_key:
            if cfg.ui_auth:
                raise ApiError(401, "the API is closed because the UI requires a login; set RAG_API_KEY to use it",
                               code="invalid_api_key")
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), cfg.api_key.encode()):
            raise ApiError(401, "Incorrect or missing API key (send 'Authorization: Bearer <RAG_API_KEY>')",
                           code="invalid_api_key")

    @api.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return exc.response()

    @api.get("/v1/models")
    async def list_models(request: Request):
        check_key(request)
        return {"object": "list", "data": models()}

    @api.get("/v1/models/{model_id:path}")
    async def get_model(model_id: str, request: Request):
        check_key(request)
        for m in models():
            if m["id"] == model_id:
                return m
        raise ApiError(404, f"model '{model_id}' does not exist (see GET /v1/models)", "model", "model_not_found")

    @api.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        check_key(request)
        try:
            body = json.loads(await request.body() or b"null")
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "the request body is not valid JSON") from None
        req = parse_request(body, default_model=EXTRACTIVE_MODEL if cfg.mode == "extractive" else generator)
        try:
            doc_ids = req.filter.resolve(assistant.documents())
        except FilterError as e:
            raise ApiError(400, f"filters: {e}", "filters") from None
        cid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        if req.stream:
            return StreamingResponse(stream_events(assistant, req, doc_ids, cid, created),
                                     media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        try:
            answer = await run_in_threadpool(assistant.ask, req.question, req.history or None, req.mode,
                                             doc_ids=doc_ids)
        except Exception as e:
            log.exception("answer failed")
            raise ApiError(500, f"answering failed ({type(e).__name__})", type_="server_error") from None
        return completion(answer, req.model, cid, created)

    @api.api_route("/v1/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def unknown(rest: str, request: Request):
        check_key(request)
        raise ApiError(404, f"unknown route /v1/{rest} (this server has /v1/models and /v1/chat/completions)",
                       code="unknown_url")

    return api
