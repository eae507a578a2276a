"""The ``rag`` command line: a thin front end over ``rag.Assistant`` (plus the UI and the eval runner).

It lives outside ``rag/`` so the library never depends on its own front ends."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import List, Optional

import typer

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rag.config import RagConfig  # noqa: E402

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Grounded question answering over your Dutch documents, offline.")

IndexOpt = typer.Option(None, "--index", help="index folder (default: ./index or $RAG_INDEX)")
EmbOpt = typer.Option(None, "--embedder", help="'e5-small' or a local sentence-transformers folder")
DocOpt = typer.Option(None, "--doc", help="only this document: file name or glob (repeatable)")
SinceOpt = typer.Option(None, "--since", help="only documents dated on/after YYYY, YYYY-MM or YYYY-MM-DD")
UntilOpt = typer.Option(None, "--until", help="only documents dated on/before YYYY, YYYY-MM or YYYY-MM-DD")


def _cfg(index: Optional[str] = None, **kw) -> RagConfig:
    return RagConfig.from_env(index_dir=index, **kw)


def _fail(msg: str, code: int = 1) -> None:
    typer.secho(f"error: {msg}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _guard(fn):
    """Turn known failures into one clear line instead of a traceback."""
    import functools

    from rag.ingest.loaders import LoadError
    from rag.modelprep.prepare import ModelMissingError
    from rag.stores.base import StoreError

    @functools.wraps(fn)
    def wrapper(*a, **kw):
        try:
            return fn(*a, **kw)
        except (ModelMissingError, StoreError, LoadError, ValueError, FileNotFoundError) as e:
            _fail(str(e))

    return wrapper


def _assistant(cfg: RagConfig, need_existing: bool = True):
    from rag import Assistant

    a = Assistant(cfg)
    if need_existing and not a.store.exists:
        _fail(f"no index at {cfg.index_dir}; run: rag ingest seeds/ (or pass --index DIR)")
    return a


def _doc_ids(assistant, docs: Optional[List[str]], since: Optional[str], until: Optional[str]):
    """--doc/--since/--until as the doc ids retrieval may use (None = all); one clear line when they match none."""
    from rag.types import Filter

    try:
        return Filter(docs=tuple(docs or ()), since=since or "", until=until or "").resolve(assistant.documents())
    except ValueError as e:
        _fail(f"filter: {e}")


@app.command()
@_guard
def ingest(paths: List[str] = typer.Argument(..., help="files or folders"),
           index: Optional[str] = IndexOpt, embedder: Optional[str] = EmbOpt,
           force: bool = typer.Option(False, help="re-index unchanged files too"),
           ray: bool = typer.Option(False, "--ray", help="load, chunk and embed as a Ray Data pipeline "
                                    "(RAG_RAY_ADDRESS; empty = a local Ray instance)"),
           json_out: bool = typer.Option(False, "--json")):
    """Add or update documents (txt, md, html, pdf, docx) in the index. One line per bad file; exit code
    0 = every file indexed or unchanged, 2 = some files failed (the others are indexed), 1 = nothing indexed."""
    cfg = _cfg(index, embedder=embedder)
    assistant = _assistant(cfg, need_existing=False)

    def on_file(f: str, status: str):
        if not json_out:
            color = typer.colors.RED if status.startswith("error") else None
            typer.secho(f"  {_one_line(status):10s} {_one_line(f)}", fg=color, err=status.startswith("error"))

    if ray:
        from rag.ingest.ray_pipeline import ingest_ray

        rep = ingest_ray(paths, cfg, progress=not json_out, on_file=on_file, force=force)
    else:
        rep = assistant.ingest(paths, progress=not json_out, on_file=on_file, force=force)
    if json_out:
        typer.echo(json.dumps(rep.to_dict(), ensure_ascii=False, indent=1))
    else:
        typer.echo(f"{len(rep.added)} added, {len(rep.updated)} updated, {len(rep.skipped)} unchanged, "
                   f"{len(rep.errors)} failed; {rep.chunks} chunks in {rep.seconds:.1f}s "
                   f"({rep.passages_per_s:.1f} passages/s) -> {cfg.index_dir}")
    if not (rep.errors or rep.added or rep.updated or rep.skipped):
        _fail("no supported files found in " + ", ".join(_one_line(str(p)) for p in paths))
    if rep.errors:
        raise typer.Exit(2 if rep.added or rep.updated or rep.skipped else 1)


def _one_line(text: str) -> str:
    """File names may hold line breaks or other control characters: show them escaped."""
    return "".join(repr(ch)[1:-1] if ch < " " or ch == "\x7f" else ch for ch in text)


@app.command()
@_guard
def remove(files: List[str] = typer.Argument(..., help="file path, file name or doc id"),
           index: Optional[str] = IndexOpt, embedder: Optional[str] = EmbOpt):
    """Remove documents from the index."""
    cfg = _cfg(index, embedder=embedder)
    removed, missing = _assistant(cfg).remove(files)
    for r in removed:
        typer.echo(f"  removed {r}")
    for m in missing:
        typer.secho(f"  not in the index: {m}", fg=typer.colors.YELLOW, err=True)
    if missing and not removed:
        raise typer.Exit(1)


@app.command()
@_guard
def search(question: str, k: int = typer.Option(5, "-k", help="number of passages"),
           retriever: Optional[str] = typer.Option(None, "--retriever", help="bm25 | dense | hybrid"),
           doc: Optional[List[str]] = DocOpt, since: Optional[str] = SinceOpt, until: Optional[str] = UntilOpt,
           index: Optional[str] = IndexOpt, embedder: Optional[str] = EmbOpt,
           json_out: bool = typer.Option(False, "--json")):
    """Show the best passages for a question with file, score and character offsets."""
    cfg = _cfg(index, embedder=embedder)
    assistant = _assistant(cfg)
    hits = assistant.search(question, k=k, retriever=retriever, doc_ids=_doc_ids(assistant, doc, since, until))
    if json_out:
        typer.echo(json.dumps([h.to_dict() for h in hits], ensure_ascii=False, indent=1))
        return
    if not hits:
        typer.echo("no passages found")
    for h in hits:
        c = h.chunk
        typer.secho(f"[{h.rank}] {c.doc}  score={h.score:.4f} relevance={h.relevance:.2f}  "
                    f"chars {c.start}-{c.end}  {c.chunk_id}", bold=True)
        typer.echo("    " + c.text.replace("\n", " ")[:400] + ("…" if len(c.text) > 400 else ""))


@app.command()
@_guard
def info(index: Optional[str] = IndexOpt, embedder: Optional[str] = EmbOpt,
         json_out: bool = typer.Option(False, "--json")):
    """Show what the index holds."""
    cfg = _cfg(index, embedder=embedder)
    a = _assistant(cfg)
    data = a.info()
    data["docs"] = [{"name": d.name, "title": d.title, "date": d.date, "chunks": d.n_chunks, "path": d.path}
                    for d in a.documents()]
    if json_out:
        typer.echo(json.dumps(data, ensure_ascii=False, indent=1))
        return
    typer.echo(f"index {data['index']}: {data['documents']} documents, {data['chunks']} chunks, "
               f"embedder {data['embedder']} ({data['dim']}d, {data['backend']} {data['vector_index']}), "
               f"updated {data['updated']}")
    for d in data["docs"]:
        typer.echo(f"  {d['name']:32s} {d['chunks']:4d} chunks  {d['date'] or '-':8s} {d['title'][:60]}")


@app.command()
@_guard
def ask(question: str,
        mode: Optional[str] = typer.Option(None, "--mode", help="generate | extractive"),
        generator: Optional[str] = typer.Option(None, "--generator", help="qwen-1.5b | qwen-0.5b | path"),
        k: Optional[int] = typer.Option(None, "-k", help="passages to retrieve"),
        doc: Optional[List[str]] = DocOpt, since: Optional[str] = SinceOpt, until: Optional[str] = UntilOpt,
        index: Optional[str] = IndexOpt, embedder: Optional[str] = EmbOpt,
        fmt: str = typer.Option("text", "--format", help="text | json | md (Markdown with the sources)"),
        json_out: bool = typer.Option(False, "--json", help="same as --format json")):
    """Answer a question with citations (or say the sources don't hold the answer)."""
    from rag.types import Final

    fmt = "json" if json_out else fmt
    if fmt not in ("text", "json", "md"):
        _fail(f"--format: '{fmt}' is not one of text, json, md")
    cfg = _cfg(index, embedder=embedder, generator=generator, mode=mode)
    assistant = _assistant(cfg)
    doc_ids = _doc_ids(assistant, doc, since, until)
    final = None
    streamed = False
    for event in assistant.ask_stream(question, k=k, doc_ids=doc_ids):
        if isinstance(event, Final):
            final = event.answer
        elif fmt == "text" and sys.stdout.isatty():
            typer.secho(event.text, nl=False, dim=True)
            streamed = True
    if fmt == "json":
        typer.echo(json.dumps(final.to_dict(), ensure_ascii=False, indent=1))
        return
    if fmt == "md":
        typer.echo(final.to_markdown(), nl=False)
        return
    if streamed:
        typer.echo("\r\033[2K", nl=False)
        typer.echo()
    print_answer(final, assistant.generator_error)


def print_answer(a, note: str = "") -> None:
    if a.refused:
        typer.secho(a.text, fg=typer.colors.YELLOW, bold=True)
        typer.secho(f"  ({a.refusal_reason})", dim=True)
    else:
        typer.secho(a.text, bold=True)
    if a.citations:
        typer.echo()
    for c in a.citations:
        meta = ", ".join(x for x in (c.title[:60], c.date) if x)
        typer.secho(f"[{c.n}] {c.doc} ({meta}) chars {c.start}-{c.end}", fg=typer.colors.CYAN)
        typer.echo(f"    \"{c.quote}\"")
    if a.mode == "extractive" and note:
        typer.secho(f"(extractive mode: {note})", dim=True)
    t = a.timings
    typer.secho(f"({a.mode}, {t.get('total_s', 0):.2f}s)", dim=True)


@app.command()
@_guard
def meta(file: str = typer.Argument(..., help="file path, file name or doc id of an indexed document"),
         title: Optional[str] = typer.Option(None, "--title", help="new title"),
         date: Optional[str] = typer.Option(None, "--date", help="new date: YYYY, YYYY-MM or YYYY-MM-DD ('' clears)"),
         index: Optional[str] = IndexOpt, embedder: Optional[str] = EmbOpt):
    """Show or edit a document's title and date (used in citations, filters and exports)."""
    from rag.types import check_date

    if date is not None:
        try:
            date = check_date(date, "--date")
        except ValueError as e:
            _fail(str(e))
    if title is not None and not title.strip():
        _fail("--title: give a non-empty title")
    cfg = _cfg(index, embedder=embedder)
    info = _assistant(cfg).set_meta(file, title=title.strip() if title is not None else None, date=date)
    if info is None:
        _fail(f"{file}: not in the index (see rag info; a file name shared by two documents needs the full path)")
    typer.echo(f"{info.name}: title '{info.title}', date '{info.date or '-'}'")


@app.command("eval")
@_guard
def eval_cmd(set_path: Optional[str] = typer.Option(None, "--set", help="question set (JSONL)"),
             out: Optional[str] = typer.Option(None, "--out", help="report folder (default eval/runs/<stamp>)"),
             mode: Optional[str] = typer.Option(None, "--mode", help="generate | extractive"),
             retrieval_only: bool = typer.Option(False, "--retrieval-only"),
             k: Optional[int] = typer.Option(None, "-k", help="passages that feed the answer"),
             ks: str = typer.Option("1,3,5,10", "--ks", help="cut-offs for retrieval hit@k (the deepest is also "
                                                           "the depth of MRR and nDCG)"),
             split: Optional[str] = typer.Option(None, "--split", help="only items of this split (tune | test)"),
             retriever: Optional[str] = typer.Option(None, "--retriever", help="bm25 | dense | hybrid"),
             generator: Optional[str] = typer.Option(None, "--generator"),
             gen_cache: Optional[str] = typer.Option(None, "--gen-cache", help="cache generations in this JSONL file "
                                                     "(re-scoring without re-running the model; latency then invalid)"),
             compare: Optional[List[str]] = typer.Option(None, "--compare", help="two report folders (give twice)"),
             index: Optional[str] = IndexOpt, embedder: Optional[str] = EmbOpt):
    """Evaluate retrieval, answers, refusals and citations on a question set."""
    if compare:
        from eval.runner import compare as run_compare

        if len(compare) != 2:
            _fail("--compare takes two folders: --compare A --compare B")
        typer.echo(run_compare(compare[0], compare[1]))
        return
    if not set_path:
        _fail("give --set FILE (e.g. eval/sets/dev.jsonl) or --compare A --compare B")
    import time as _time

    from eval.dataset import DatasetError
    from eval.report import headline
    from eval.runner import run as run_eval

    try:
        cut = tuple(sorted({int(x) for x in ks.split(",") if x.strip()}))
    except ValueError:
        cut = ()
    if not cut or min(cut) < 1:
        _fail(f"--ks: expected positive whole numbers separated by commas, got '{ks}'")
    cfg = _cfg(index, embedder=embedder, generator=generator, retriever=retriever, mode=mode)
    out = out or str(Path("eval/runs") / _time.strftime("%Y%m%d-%H%M%S"))
    assistant = _assistant(cfg)
    if gen_cache and cfg.mode == "generate" and assistant.generator() is not None:
        from eval.gencache import CachingGenerator

        assistant.with_generator(CachingGenerator(assistant.generator(), gen_cache))
    try:
        summary = run_eval(set_path, assistant, out, mode=cfg.mode, retrieval_only=retrieval_only, k=k, ks=cut,
                           split=split)
    except DatasetError as e:
        _fail(str(e))
    if gen_cache:
        typer.secho(f"generation cache {gen_cache}: latency figures are not valid for cached answers", dim=True)
    for line in headline(summary):
        typer.echo("  " + line)
    typer.echo(f"report: {out}/report.md, {out}/report.html ({summary['seconds']} s"
               + (", interrupted" if summary["interrupted"] else "") + ")")


@app.command()
@_guard
def serve(host: str = typer.Option("127.0.0.1", "--host", help="bind address (localhost by default)"),
          port: int = typer.Option(7860, "--port"),
          index: Optional[str] = IndexOpt, embedder: Optional[str] = EmbOpt,
          generator: Optional[str] = typer.Option(None, "--generator")):
    """Start the chat UI and the OpenAI-compatible API under /v1 (RAG_UI_AUTH=user:password requires a login
    for the UI; RAG_API_KEY sets the API's bearer token)."""
    from ui.app import launch

    cfg = _cfg(index, embedder=embedder, generator=generator)
    assistant = _assistant(cfg, need_existing=False)
    typer.echo(f"chat UI on http://{host}:{port}, OpenAI-compatible API on http://{host}:{port}/v1  "
               f"(index {cfg.index_dir})")
    launch(assistant, host=host, port=port)


@app.command()
def models(prepare: bool = typer.Option(False, "--prepare", help="convert/assemble missing models"),
           only: Optional[List[str]] = typer.Option(None, "--generator", help="limit --prepare to these generators"),
           json_out: bool = typer.Option(False, "--json")):
    """Show which models are installed and where (and prepare them)."""
    from rag.modelprep import prepare as m

    cfg = _cfg()
    if prepare:
        try:
            m.prepare(cfg, generators=only, log=lambda s: typer.echo(s, err=True))
        except Exception as e:  # network or checksum failures get one line
            _fail(f"preparing models failed: {e}")
    rows = m.status(cfg)
    if json_out:
        typer.echo(json.dumps(rows, indent=1))
        return
    for r in rows:
        mark = "ok " if r["ready"] else "MISSING"
        act = "*" if r.get("active") else " "
        typer.echo(f"{act} {r['kind']:9s} {r['name']:16s} {mark:7s} {r['path']}")
    if not all(r["ready"] for r in rows if r.get("active")):
        typer.echo(f"fix: {m.SETUP_HINT}", err=True)


def main() -> None:  # console-script entry point
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
