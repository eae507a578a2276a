"""File loaders: .txt, .md, .html, .pdf, .docx -> :class:`Document` with raw text.

Every failure is a :class:`LoadError` naming the file and the problem, so callers can report it
and carry on with the other files.
"""

from __future__ import annotations

import hashlib
import html
import re
from html.parser import HTMLParser
from pathlib import Path

from .clean import META_LINE, clean
from ..files import sha256_file as file_sha256
from ..types import Document

SUPPORTED = {".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx"}
MAX_BYTES = 50 * 1024 * 1024


class LoadError(Exception):
    """A file could not be loaded; the message names the file and the reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


def doc_id_for(path: Path) -> str:
    return hashlib.sha1(str(path.resolve()).encode("utf-8")).hexdigest()[:12]


def _decode(data: bytes, path: Path) -> str:
    if b"\x00" in data[:4096]:
        raise LoadError(path, "looks like a binary file, not text")
    for enc in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            continue
    raise LoadError(path, "cannot decode the text (not UTF-8 or Windows-1252)")


class _HTMLText(HTMLParser):
    BLOCK = {"p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "table",
             "section", "article", "header", "footer", "blockquote", "pre", "title"}
    SKIP = {"script", "style", "noscript", "template", "head"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self._skip = 0
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        if tag == "title":
            self._in_title = True
        if tag in self.SKIP and tag != "head":
            self._skip += 1
        if tag in self.BLOCK:
            self.parts.append("\n\n")

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False
        if tag in self.SKIP and tag != "head" and self._skip:
            self._skip -= 1
        if tag in self.BLOCK:
            self.parts.append("\n\n")

    def handle_data(self, data):
        if self._in_title:
            self.title += data
            return
        if not self._skip:
            self.parts.append(data)


def _html_text(src: str) -> tuple[str, str]:
    p = _HTMLText()
    p.feed(src)
    p.close()
    text = "".join(p.parts)
    text = re.sub(r"[ \t\r\f\v]+", " ", text)
    text = re.sub(r" *\n[ \n]*\n *", "\n\n", text).strip()
    return text, html.unescape(p.title).strip()


def _pdf_text(path: Path) -> str:
    try:
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError
    except ImportError as e:  # pragma: no cover - dependency is in pyproject
        raise LoadError(path, f"pypdf is not installed ({e})")
    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted:
            try:
                reader.decrypt("")
            except Exception:
                raise LoadError(path, "the PDF is encrypted")
        pages = [(page.extract_text() or "") for page in reader.pages]
    except LoadError:
        raise
    except (PdfReadError, Exception) as e:
        raise LoadError(path, f"not a readable PDF ({type(e).__name__}: {e})")
    text = "\n\n".join(p.strip("\n") for p in pages)
    if not text.strip():
        raise LoadError(path, "the PDF has no extractable text (scanned images need OCR)")
    return text


def _docx_text(path: Path) -> tuple[str, str]:
    try:
        import docx  # python-docx
    except ImportError as e:  # pragma: no cover
        raise LoadError(path, f"python-docx is not installed ({e})")
    try:
        d = docx.Document(str(path))
    except Exception as e:
        raise LoadError(path, f"not a readable DOCX ({type(e).__name__})")
    paras = [p.text for p in d.paragraphs]
    for table in d.tables:
        for row in table.rows:
            paras.append(" | ".join(c.text for c in row.cells))
    title = (d.core_properties.title or "").strip()
    return "\n\n".join(p for p in paras if p.strip()), title


def _first_line_title(text: str) -> str:
    for line in text.splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            return line[:120]
    return ""


def load(path: str | Path) -> Document:
    """Load one file into a Document; raises LoadError with a clear reason."""
    p = Path(path)
    if not p.exists():
        raise LoadError(p, "file not found")
    if p.is_dir():
        raise LoadError(p, "is a folder, not a file")
    ext = p.suffix.lower()
    if ext not in SUPPORTED:
        raise LoadError(p, f"unsupported file type '{ext or '(none)'}' (supported: {', '.join(sorted(SUPPORTED))})")
    size = p.stat().st_size
    if size == 0:
        raise LoadError(p, "the file is empty")
    if size > MAX_BYTES:
        raise LoadError(p, f"the file is too large ({size // (1024 * 1024)} MB > {MAX_BYTES // (1024 * 1024)} MB)")
    title = ""
    if ext in (".txt", ".md", ".markdown"):
        text = _decode(p.read_bytes(), p)
    elif ext in (".html", ".htm"):
        text, title = _html_text(_decode(p.read_bytes(), p))
    elif ext == ".pdf":
        text = _pdf_text(p)
    else:
        text, title = _docx_text(p)
    if not text.strip():
        raise LoadError(p, "no text found in the file")
    date = ""
    m = META_LINE.match(text)
    if m:
        date, title = m.group(1), m.group(2).strip()
    if not title:
        title = _first_line_title(clean(text).text) or p.stem
    return Document(
        doc_id=doc_id_for(p),
        path=str(p.resolve()),
        name=p.name,
        text=text,
        title=title,
        date=date,
        sha256=file_sha256(p),
    )


def expand_paths(paths: list[str | Path]) -> list[Path]:
    """Files named directly plus supported files found under named folders (sorted)."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in SUPPORTED
                              and not any(part.startswith(".") for part in q.relative_to(p).parts)))
        else:
            out.append(p)
    return out
