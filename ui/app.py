"""Gradio chat UI: streaming answers with clickable citations, a sources panel with the
supporting span highlighted, and a documents tab for upload/removal. Talks only to ``Assistant``."""

from __future__ import annotations

import html
import os
import re
import stat
import tempfile
import threading
import time
import unicodedata
import uuid
from dataclasses import fields
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline: no telemetry or version check
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import gradio as gr  # noqa: E402

from rag import Assistant
from rag.config import MODES, RetrievalConfig
from rag.ingest.loaders import SUPPORTED
from rag.text import strip_invisible
from rag.types import Answer, Filter, Final

from .openai_api import create_api
from .render import CSS, JS, answer_html, md_text, sources_html

EXAMPLES = [
    "Wat keurden de ministers goed voor VN-vredeshandhaving?",
    "Hoeveel landen steunen Rutte volgens de NOS?",
    "Welke taken neemt de NAVO-missie in Irak over?",
    "What did Germany pledge to Ukraine?",
]

MAX_NAME_CHARS = 120
_UNSAFE_NAME = re.compile(r"[^\w .,()+=@-]")  # \w: letters and digits of any script, and "_"


def safe_upload_name(name: str) -> str:
    """A client-supplied file name as a plain name inside the upload folder: the last path part only
    (``/`` and ``\\``), no control, zero-width or markup characters, no leading dots or dashes
    (hidden files, options), at most MAX_NAME_CHARS characters with the extension kept."""
    base = re.split(r"[\\/]", unicodedata.normalize("NFC", str(name or "")))[-1]
    base = _UNSAFE_NAME.sub("_", strip_invisible(base)).strip(" .-")
    stem, ext = os.path.splitext(base)
    if not stem.strip(" ._-"):
        stem = "upload"
    ext = ext[:12]
    return stem[: MAX_NAME_CHARS - len(ext)].rstrip(" .") + ext


K_MIN, K_MAX = next((f.metadata["min"], f.metadata["max"]) for f in fields(RetrievalConfig) if f.name == "top_k")


def api_args(question, mode, k) -> tuple[str, str, int]:
    """Validate /answer inputs from API clients; raises gr.Error naming the field and the problem.
    (The question's content — empty, too long, no words — is judged by the assistant and refused.)"""
    if question is not None and not isinstance(question, str):
        raise gr.Error(f"question: expected text, got {type(question).__name__}")
    if not isinstance(mode, str) or mode not in MODES:
        raise gr.Error(f"mode: {str(mode)[:40]!r} is not one of {', '.join(MODES)}")
    if isinstance(k, bool) or not isinstance(k, (int, float)) or k != int(k):
        raise gr.Error(f"k: expected a whole number from {K_MIN} to {K_MAX}, got {str(k)[:40]!r}")
    if not K_MIN <= int(k) <= K_MAX:
        raise gr.Error(f"k: {int(k)} is outside {K_MIN}..{K_MAX}")
    return question or "", mode, int(k)


class _TooLarge(Exception):
    pass


def _copy_limited(src: Path, dst: Path, limit: int) -> int:
    """Copy ``src`` (never through a symlink) to a new file ``dst``, refusing more than ``limit`` bytes."""
    fd = os.open(src, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    n = 0
    with os.fdopen(fd, "rb") as fi, open(dst, "xb") as fo:
        while chunk := fi.read(1 << 20):
            n += len(chunk)
            if n > limit:
                raise _TooLarge(f"{n / 2**20:.1f} MB gelezen")
            fo.write(chunk)
    return n


class UIState:
    """Shared per process: one assistant (models load once); uploads are serialised."""

    def __init__(self, assistant: Assistant):
        self.assistant = assistant
        self.cfg = assistant.cfg
        self.max_upload_mb = self.cfg.max_upload_mb
        self.upload_lock = threading.Lock()
        self.upload_dir = Path(self.cfg.index_dir) / "uploads"

    # ---------- documents ----------
    def doc_rows(self) -> list[list]:
        return [[d.name, d.title, d.date, d.n_chunks] for d in self.assistant.documents()]

    def doc_names(self) -> list[str]:
        return [d.name for d in self.assistant.documents()]

    def add_files(self, paths: list[str], progress=None) -> str:
        """Validate, copy into the index's upload folder and ingest; one line per file.

        Server-side, whatever the browser or an API client sent: names are reduced to a safe base name
        (no folders, "..", control or markup characters), symlinks and non-regular files are refused,
        the size limit holds while copying, and nothing is written outside ``<index>/uploads``. A new
        version of an uploaded file replaces the old one only once it is indexed."""
        limit = self.max_upload_mb * 1024 * 1024
        lines, accepted, names = [], [], set()
        for p in paths or []:
            src = Path(str(p))
            name = safe_upload_name(src.name)
            shown = md_text("".join(repr(c)[1:-1] if c < " " or c == "\x7f" else c for c in src.name))  # one line
            if Path(name).suffix.lower() not in SUPPORTED:
                ext = Path(name).suffix.lower()
                lines.append(f"❌ {shown}: bestandstype {md_text(ext or '(geen)')} wordt niet ondersteund "
                             f"({', '.join(sorted(SUPPORTED))})")
                continue
            try:
                st = os.lstat(src)
            except OSError:
                lines.append(f"❌ {shown}: het bestand is niet (meer) aanwezig")
                continue
            if stat.S_ISLNK(st.st_mode) or not stat.S_ISREG(st.st_mode):
                lines.append(f"❌ {shown}: geen gewoon bestand (symbolische links worden geweigerd)")
                continue
            if st.st_size > limit:
                lines.append(f"❌ {shown}: te groot ({st.st_size / 2**20:.1f} MB > {self.max_upload_mb} MB)")
                continue
            while name.lower() in names:  # two files with one name in one batch: keep both
                stem, ext = os.path.splitext(name)
                name = f"{stem}_{ext}"
            names.add(name.lower())
            if name != src.name:
                shown += f" (opgeslagen als {md_text(name)})"
            accepted.append((src, name, shown))
        if not accepted:
            return "\n".join(f"- {x}" for x in lines) or "Geen bestanden gekozen."
        with self.upload_lock:
            if self.upload_dir.is_symlink():
                return "\n".join(f"- {x}" for x in lines + ["❌ de uploadmap is een symbolische link; geweigerd"])
            self.upload_dir.mkdir(parents=True, exist_ok=True)
            root = self.upload_dir.resolve()
            targets, backups, shown_of = [], {}, {}
            for src, name, shown in accepted:
                dst = root / name
                if dst.parent != root:  # cannot happen after safe_upload_name; never write elsewhere
                    lines.append(f"❌ {shown}: ongeldige bestandsnaam")
                    continue
                tmp = root / f".{uuid.uuid4().hex}.part"
                try:
                    _copy_limited(src, tmp, limit)
                except _TooLarge as e:
                    tmp.unlink(missing_ok=True)
                    lines.append(f"❌ {shown}: te groot (> {self.max_upload_mb} MB; {e})")
                    continue
                except OSError as e:
                    tmp.unlink(missing_ok=True)
                    lines.append(f"❌ {shown}: kan het bestand niet lezen ({md_text(e.strerror or str(e))})")
                    continue
                if dst.is_symlink() or dst.is_dir():
                    lines.append(f"❌ {shown}: in de uploadmap staat al iets anders met deze naam")
                    tmp.unlink(missing_ok=True)
                    continue
                if dst.exists():  # keep the indexed version until the new one is in
                    backups[str(dst)] = root / f".{uuid.uuid4().hex}.bak"
                    os.replace(dst, backups[str(dst)])
                os.replace(tmp, dst)
                targets.append(dst)
                shown_of[str(dst)] = shown
            done = [0]

            def on_file(f: str, status: str):
                done[0] += 1
                if progress is not None:
                    progress(done[0] / max(1, len(targets)), desc=f"{Path(f).name}: {status}")

            try:
                rep = self.assistant.ingest(targets, on_file=on_file) if targets else None
            except Exception as e:  # the index is unchanged (one atomic commit); put the files back as they were
                for dst in targets:
                    self._restore(dst, backups.get(str(dst)))
                return "\n".join(f"- {x}" for x in lines + [f"❌ indexeren mislukt: {md_text(str(e))}"])
            if rep is not None:
                for f in rep.added + rep.updated:
                    lines.append(f"✅ {shown_of.get(f, md_text(Path(f).name))}: geïndexeerd")
                for f in rep.skipped:
                    lines.append(f"➖ {shown_of.get(f, md_text(Path(f).name))}: ongewijzigd")
                for f, reason in rep.errors:
                    self._restore(Path(f), backups.pop(f, None))
                    lines.append(f"❌ {shown_of.get(f, md_text(Path(f).name))}: {md_text(reason)}")
            for b in backups.values():
                b.unlink(missing_ok=True)
        return "\n".join(f"- {x}" for x in lines) or "Geen bestanden gekozen."

    @staticmethod
    def _restore(dst: Path, backup: Path | None) -> None:
        """Undo one upload: the previous version back in place, or no file at all."""
        if backup is not None and backup.exists():
            os.replace(backup, dst)
        else:
            dst.unlink(missing_ok=True)

    def export_markdown(self, answer: Answer) -> str:
        """Write the answer with its sources as a Markdown file for the download button; returns the path."""
        folder = Path(tempfile.mkdtemp(prefix="ragnl-export-"))
        path = folder / f"antwoord-{time.strftime('%Y%m%d-%H%M%S')}.md"
        path.write_text(answer.to_markdown(), encoding="utf-8")
        return str(path)

    def remove_doc(self, name: str) -> str:
        """Remove a document from the index (and its uploaded copy; files elsewhere are never touched)."""
        if not isinstance(name, str) or not name.strip():
            return "Kies eerst een document."
        if len(name) > 4096:
            return "❌ ongeldige documentnaam (te lang)."
        with self.upload_lock:
            removed, _ = self.assistant.remove([name])
            root = self.upload_dir.resolve()
            for path in removed:
                f = Path(path)
                if f.parent == root and f.is_file() and not f.is_symlink():
                    f.unlink(missing_ok=True)
        if removed:
            return f"🗑️ {md_text(name)} verwijderd uit de index."
        return f"❌ {md_text(name)} staat niet in de index."


def build_app(state: UIState) -> gr.Blocks:
    cfg = state.cfg

    def respond(message: str, chat: list, conv: list, mode: str, k: int, docs: list | None = None,
                since: str = "", until: str = ""):
        message = (message or "").strip()
        no_export = gr.update(value=None, interactive=False)
        if not message:
            yield chat, conv, gr.update(), "", no_export
            return
        chat = list(chat or []) + [{"role": "user", "content": md_text(message)},
                                   {"role": "assistant", "content": "…"}]
        try:
            doc_ids = Filter(docs=tuple(docs or ()), since=since or "", until=until or "").resolve(
                state.assistant.documents())
        except ValueError as e:  # a malformed date or a filter that matches no document
            chat[-1] = {"role": "assistant", "content": f'<div class="rag-refusal">⚠️ <b>Filter</b> — '
                                                          f"{html.escape(str(e))}</div>"}
            yield chat, conv, gr.update(), "", no_export
            return
        yield chat, conv, gr.update(), "", no_export
        partial, final = "", None
        for event in state.assistant.ask_stream(message, history=conv or None, mode=mode, k=int(k), doc_ids=doc_ids):
            if isinstance(event, Final):
                final = event.answer
            else:
                partial += event.text
                chat[-1] = {"role": "assistant", "content": md_text(partial) + " ▌"}
                yield chat, conv, gr.update(), "", no_export
        chat[-1] = {"role": "assistant", "content": answer_html(final)}
        conv = list(conv or []) + [
            {"role": "user", "content": message, "standalone": final.standalone_question},
            {"role": "assistant", "content": final.text}]
        t = final.timings
        info = (f"{final.mode} · eerste token {t['first_token_s']:.1f}s · " if "first_token_s" in t else f"{final.mode} · ")
        info += f"totaal {t.get('total_s', 0):.1f}s"
        yield (chat, conv, sources_html(final, state.assistant.document_text), info,
               gr.update(value=state.export_markdown(final), interactive=True))

    def answer_api(question: str, mode: str = "generate", k: int = 5) -> dict:
        """JSON answer for API clients: text, refused, citations with spans, timings."""
        question, mode, k = api_args(question, mode, k)  # one clear error naming the bad field
        a = state.assistant.ask(question, mode=mode, k=k)
        d = a.to_dict()
        d["passages"] = [{"doc": p["doc"], "chunk_id": p["chunk_id"], "score": p["score"]} for p in d["passages"]]
        return d

    def clear():
        return [], [], sources_html(None), "", gr.update(value=None, interactive=False)

    def picker(selected: list | None = None):
        names = state.doc_names()
        return gr.update(choices=names, value=[n for n in (selected or []) if n in names])

    def upload(files, selected, progress=gr.Progress()):
        paths = [f if isinstance(f, str) else getattr(f, "name", str(f)) for f in (files or [])]
        msg = state.add_files(paths, progress)
        return msg, state.doc_rows(), gr.update(choices=state.doc_names(), value=None), None, picker(selected)

    def do_remove(name, selected):
        msg = state.remove_doc(name)
        return msg, state.doc_rows(), gr.update(choices=state.doc_names(), value=None), picker(selected)

    with gr.Blocks(title="ragnl — vragen over je documenten") as app:
        gr.Markdown("## Vraag het je documenten\nAntwoorden met bronvermelding; staat het er niet in, dan zegt de "
                    "assistent dat. Klik op een [n] om de bron te zien.")
        with gr.Tab("Chat"):
            with gr.Row():
                with gr.Column(scale=3):
                    chatbot = gr.Chatbot(label="Gesprek", height=460, elem_id="rag-chat")
                    with gr.Row():
                        box = gr.Textbox(placeholder="Stel een vraag…", show_label=False, scale=5,
                                         elem_id="rag-question")
                        send = gr.Button("Vraag", variant="primary", scale=1, elem_id="rag-send")
                    with gr.Row():
                        mode = gr.Radio(list(MODES), value=cfg.mode, label="Antwoordmodus")
                        k = gr.Slider(1, 10, value=cfg.top_k, step=1, label="Aantal passages (top-k)")
                        clear_btn = gr.Button("Nieuw gesprek", elem_id="rag-clear")
                    with gr.Accordion("Filters: documenten en datum", open=False):
                        doc_filter = gr.Dropdown(choices=state.doc_names(), value=[], multiselect=True,
                                                 label="Alleen deze documenten (leeg = alle)", elem_id="rag-doc-filter")
                        with gr.Row():
                            since = gr.Textbox(label="Vanaf (JJJJ, JJJJ-MM of JJJJ-MM-DD)", elem_id="rag-since")
                            until = gr.Textbox(label="Tot en met", elem_id="rag-until")
                    info = gr.Markdown(elem_id="rag-info")
                    export = gr.DownloadButton("Download antwoord + bronnen (Markdown)", value=None,
                                               interactive=False, elem_id="rag-export")
                    gr.Examples(EXAMPLES, inputs=box)
                with gr.Column(scale=2):
                    gr.Markdown("### Bronnen")
                    sources = gr.HTML(sources_html(None), elem_id="rag-sources")
            conv = gr.State([])
            ev = dict(fn=respond, inputs=[box, chatbot, conv, mode, k, doc_filter, since, until],
                      outputs=[chatbot, conv, sources, info, export])
            send.click(**ev, api_name="chat").then(lambda: "", outputs=box)
            box.submit(**ev, api_name=False).then(lambda: "", outputs=box)
            clear_btn.click(clear, outputs=[chatbot, conv, sources, info, export], api_name=False)
        with gr.Tab("Documenten"):
            gr.Markdown(f"Upload .txt, .md, .html, .pdf of .docx (max {state.max_upload_mb} MB per bestand).")
            files = gr.File(file_count="multiple", file_types=sorted(SUPPORTED), label="Bestanden",
                            elem_id="rag-upload")
            up_btn = gr.Button("Indexeer", variant="primary", elem_id="rag-ingest")
            status = gr.Markdown(elem_id="rag-upload-status")
            table = gr.Dataframe(value=state.doc_rows(), headers=["bestand", "titel", "datum", "chunks"],
                                 interactive=False, elem_id="rag-docs")
            with gr.Row():
                pick = gr.Dropdown(choices=state.doc_names(), label="Document verwijderen", value=None)
                rm_btn = gr.Button("Verwijder", variant="stop")
            up_btn.click(upload, inputs=[files, doc_filter], outputs=[status, table, pick, files, doc_filter],
                         api_name="upload")
            rm_btn.click(do_remove, inputs=[pick, doc_filter], outputs=[status, table, pick, doc_filter],
                         api_name="remove")
        app.load(picker, inputs=doc_filter, outputs=doc_filter, api_name=False)
        gr.api(answer_api, api_name="answer")
    app.queue(default_concurrency_limit=4, max_size=128)
    return app


def warm_up(state: UIState) -> None:
    try:
        state.assistant.warm_up()
    except Exception:  # warming is an optimisation; errors surface on the first real question
        pass


def create_app(assistant: Assistant, host: str = "127.0.0.1", port: int = 7860):
    """One FastAPI app: the OpenAI-compatible API under /v1 (``ui.openai_api``) and the Gradio UI at /,
    both on the same Assistant. The UI login (RAG_UI_AUTH) guards the UI; the API has its own key."""
    cfg = assistant.cfg
    auth = tuple(cfg.ui_auth.split(":", 1)) if cfg.ui_auth else None
    state = UIState(assistant)
    api = create_api(assistant)  # its /v1 routes are matched before the Gradio mount
    return gr.mount_gradio_app(api, build_app(state), path="/", server_name=host, server_port=port, auth=auth,
                               css=CSS, js=JS, max_file_size=f"{state.max_upload_mb}mb", show_error=True,
                               footer_links=[])


def launch(assistant: Assistant, host: str = "127.0.0.1", port: int = 7860) -> None:
    import uvicorn

    app = create_app(assistant, host, port)
    threading.Thread(target=warm_up, args=(UIState(assistant),), daemon=True).start()
    uvicorn.run(app, host=host, port=port, log_level="warning")
