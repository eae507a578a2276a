"""File loaders: .txt, .md, .html, .pdf, .docx -> :class:`Document` with raw text.

Every failure is a :class:`LoadError` naming the file and the problem, so callers can report it
and carry on with the other files. A file is read once (at most ``max_bytes``); its text, its hash and
its title come from those bytes, so a file changed or removed mid-ingest cannot mix two versions.
Control and zero-width characters are removed from the loaded text (``rag.text.strip_invisible``):
the stored document text is that text, so every offset points into what the UI shows.
"""

from __future__ import annotations

import hashlib
import html
import io
import re
import zipfile
from html.parser import HTMLParser
from pathlib import Path

from .clean import META_LINE, clean, is_paged
from .sentences import split_spans
from ..files import sha256_file as file_sha256
from ..text import strip_invisible
from ..types import Document

SUPPORTED = {".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx"}
MAX_BYTES = 50 * 1024 * 1024  # defaults of ChunkingConfig.max_file_mb / max_document_chars (RAG_MAX_FILE_MB …)
MAX_CHARS = 2_000_000
DOCX_UNPACKED_FACTOR = 8  # a .docx may unpack to at most this many times max_bytes (ZIP bombs)


class LoadError(Exception):
    """A file could not be loaded; the message names the file and the reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


def doc_id_for(path: Path) -> str:
    return hashlib.sha1(str(path.resolve()).encode("utf-8")).hexdigest()[:12]


def _decode(data: bytes, path: Path) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 with a byte-order mark (Windows Notepad)
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise LoadError(path, "cannot decode the text (broken UTF-16)") from None
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
    HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self.headings: list[tuple[int, str]] = []  # (level, text) in document order
        self._heading: tuple[int, list[str]] | None = None
        self._skip = 0
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        if tag == "title":
            self._in_title = True
        if tag in self.HEADINGS and not self._skip:
            self._heading = (int(tag[1]), [])
        if tag in self.SKIP and tag != "head":
            self._skip += 1
        if tag in self.BLOCK:
            self.parts.append("\n\n")

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False
        if tag in self.HEADINGS and self._heading is not None:
            text = " ".join("".join(self._heading[1]).split())
            if text:
                self.headings.append((self._heading[0], text))
            self._heading = None
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
            if self._heading is not None:
                self._heading[1].append(data)


def _html_text(src: str) -> tuple[str, str, list[tuple[int, str]]]:
    """(text, title, headings as (level, text) in order)."""
    p = _HTMLText()
    p.feed(src)
    p.close()
    text = "".join(p.parts)
    text = re.sub(r"[ \t\r\f\v]+", " ", text)
    text = re.sub(r" *\n[ \n]*\n *", "\n\n", text).strip()
    return text, html.unescape(p.title).strip(), p.headings


_MD_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$", re.M)


def locate_headings(text: str, headings: list[tuple[int, str]]) -> list[tuple[int, int, str]]:
    """(offset, level, heading) for each heading found in ``text``, searched in order from the last one
    found (a heading the text lost is skipped)."""
    out, pos = [], 0
    for level, h in headings:
        at = text.find(h, pos)
        if at >= 0:
            out.append((at, level, h))
            pos = at + len(h)
    return out


def _pdf_text(path: Path, data: bytes) -> str:
    try:
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError
    except ImportError as e:  # pragma: no cover - dependency is in pyproject
        raise LoadError(path, f"pypdf is not installed ({e})")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")  # PDFs with only an owner password open with the empty one
            except Exception as e:
                raise LoadError(path, f"the PDF is encrypted ({type(e).__name__}: {e})") from None
            if not opened:
                raise LoadError(path, "the PDF is encrypted with a password; save an unprotected copy")
        pages = [(page.extract_text() or "") for page in reader.pages]
    except LoadError:
        raise
    except (PdfReadError, Exception) as e:
        raise LoadError(path, f"not a readable PDF ({type(e).__name__}: {e})")
    text = "\n\n".join(p.strip("\n") for p in pages)
    if not text.strip():
        raise LoadError(path, "the PDF has no extractable text (scanned images need OCR)")
    return text


def _check_docx_zip(path: Path, data: bytes, max_bytes: int) -> None:
    """A .docx is a ZIP holding word/document.xml; refuse other ZIPs and ZIP bombs before parsing."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            infos = z.infolist()
    except zipfile.BadZipFile:
        raise LoadError(path, "not a readable DOCX (not a ZIP-based Word file)") from None
    names = {i.filename for i in infos}
    if "word/document.xml" not in names:
        raise LoadError(path, "not a Word document (the ZIP holds no word/document.xml"
                              + ("; it looks like a spreadsheet)" if "xl/workbook.xml" in names else ")"))
    unpacked = sum(i.file_size for i in infos)
    if unpacked > DOCX_UNPACKED_FACTOR * max_bytes:
        raise LoadError(path, f"the DOCX unpacks to {unpacked // (1024 * 1024)} MB "
                              f"(> {DOCX_UNPACKED_FACTOR * max_bytes // (1024 * 1024)} MB)")


def _docx_text(path: Path, data: bytes, max_bytes: int = MAX_BYTES) -> tuple[str, str]:
    try:
        import docx  # python-docx
    except ImportError as e:  # pragma: no cover
        raise LoadError(path, f"python-docx is not installed ({e})")
    _check_docx_zip(path, data, max_bytes)
    try:
        d = docx.Document(io.BytesIO(data))
    except Exception as e:
        raise LoadError(path, f"not a readable DOCX ({type(e).__name__}: {str(e)[:120]})") from None
    paras = [p.text for p in d.paragraphs]
    for table in d.tables:
        for row in table.rows:
            paras.append(" | ".join(c.text for c in row.cells))
    title = (d.core_properties.title or "").strip()
    return "\n\n".join(p for p in paras if p.strip()), title


TITLE_LINE_MAX = 120  # a first line this short that stands alone (or a Markdown heading) is the title
TITLE_MAX = 80  # otherwise the first sentence, cut at a word boundary to at most this many characters


def short_title(text: str, limit: int = TITLE_MAX) -> str:
    """The first sentence of ``text``, whitespace collapsed, cut at a word boundary to ``limit`` chars (…)."""
    spans = split_spans(text)
    first = " ".join(text[spans[0][0]:spans[0][1]].split()) if spans else " ".join(text.split())
    if len(first) <= limit:
        return first
    cut = first[: limit - 1]
    if " " in cut and not first[limit - 1].isspace():
        cut = cut[: cut.rfind(" ")]
    return cut.rstrip(" ,;:-–") + "…"


def _md_heading(raw: str) -> str:
    """A Markdown heading on the first non-empty line of the raw text (cleaning joins it to the next line)."""
    for line in raw.splitlines():
        if line.strip():
            head = line.strip()
            if not head.startswith("#"):
                return ""
            head = head.lstrip("#").strip()
            return head if len(head) <= TITLE_LINE_MAX else short_title(head)
    return ""


def _first_line_title(text: str) -> str:
    """A title line (a Markdown heading, or a short one-sentence first line standing alone) as it is;
    otherwise a short title from the first sentence, never the whole first paragraph."""
    lines = text.splitlines()
    for i, raw in enumerate(lines):
        line = raw.strip()
        if not line:
            continue
        heading = line.startswith("#")
        line = line.lstrip("#").strip()
        alone = (i + 1 >= len(lines) or not lines[i + 1].strip()) and len(split_spans(line)) == 1
        if line and (heading or alone) and len(line) <= TITLE_LINE_MAX:
            return line
        if line:
            return short_title("\n".join(lines[i:]).split("\n\n", 1)[0])
    return ""


def _too_large(size: int, max_bytes: int) -> str:
    return (f"the file is too large ({size / (1024 * 1024):.1f} MB > {max_bytes // (1024 * 1024)} MB; "
            f"RAG_MAX_FILE_MB raises the limit)")


def _read(p: Path, max_bytes: int) -> bytes:
    """The file's bytes, read once; at most ``max_bytes`` (a file growing while read is refused too)."""
    try:
        with open(p, "rb") as f:
            data = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise LoadError(p, "file not found (removed while ingesting?)") from None
    except OSError as e:
        raise LoadError(p, f"cannot read the file ({e.strerror or e})") from None
    if len(data) > max_bytes:
        raise LoadError(p, _too_large(len(data), max_bytes))
    if not data:
        raise LoadError(p, "the file is empty")
    return data


def load(path: str | Path, max_bytes: int = MAX_BYTES, max_chars: int = MAX_CHARS) -> Document:
    """Load one file into a Document; raises LoadError with a clear reason."""
    p = Path(path)
    if not p.exists():
        raise LoadError(p, "file not found")
    if p.is_dir():
        raise LoadError(p, "is a folder, not a file")
    ext = p.suffix.lower()
    if ext not in SUPPORTED:
        raise LoadError(p, f"unsupported file type '{ext or '(none)'}' (supported: {', '.join(sorted(SUPPORTED))})")
    if not p.is_file():
        raise LoadError(p, "not a regular file (a device, pipe or socket)")
    size = p.stat().st_size
    if size == 0:
        raise LoadError(p, "the file is empty")
    if size > max_bytes:
        raise LoadError(p, _too_large(size, max_bytes))
    data = _read(p, max_bytes)
    title = ""
    found: list[tuple[int, str]] = []
    if ext in (".txt", ".md", ".markdown"):
        text = _decode(data, p)
        if ext != ".txt":
            found = [(len(m.group(1)), m.group(2)) for m in _MD_HEADING.finditer(text)]
    elif ext in (".html", ".htm"):
        text, title, found = _html_text(_decode(data, p))
    elif ext == ".pdf":
        text = _pdf_text(p, data)
    else:
        text, title = _docx_text(p, data, max_bytes)
    text, title = strip_invisible(text), strip_invisible(title)
    if not text.strip():
        raise LoadError(p, "no text found in the file")
    if len(text) > max_chars:
        raise LoadError(p, f"the text is too long ({len(text):,} characters > {max_chars:,}; split the file or "
                           f"raise RAG_MAX_DOCUMENT_CHARS)")
    date = ""
    m = META_LINE.match(text)
    if m:
        date, title = m.group(1), m.group(2).strip()
    if not title:
        title = _md_heading(text) or _first_line_title(clean(text, paged=is_paged(p.name)).text) or p.stem
    return Document(
        doc_id=doc_id_for(p),
        path=str(p.resolve()),
        name=p.name,
        text=text,
        title=title,
        date=date,
        sha256=hashlib.sha256(data).hexdigest(),  # the bytes read, = file_sha256 of an unchanged file
        headings=locate_headings(text, [(lv, strip_invisible(h)) for lv, h in found]),
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
