"""Fetch evaluation corpora that ship as Debian documentation packages (standard library only).

A corpus is downloaded with ``apt-get download PACKAGE`` into a temporary folder, unpacked with
``dpkg-deb -x`` (nothing is installed), and the pages under one folder of the package are copied
to a flat folder, by default ``~/.cache/ragnl/corpora/<name>/`` (``$RAG_CACHE/corpora/<name>/``
when ``RAG_CACHE`` is set). Compressed pages (``*.gz``) are decompressed. Pages in sub-folders
get flat names made of their relative path joined with ``__``.

Usage::

    python3 eval/corpora.py install-guide-nl [--dest DIR]
    python3 eval/corpora.py --list

or from Python: ``from eval.corpora import fetch; folder = fetch("install-guide-nl")``.

Fetching is idempotent: a destination folder that already holds files is returned as is.
A hidden ``.corpus.json`` in the folder records package, version and page count (hidden files
are skipped by the project's folder ingestion).
"""

from __future__ import annotations

import argparse
import fnmatch
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# NAME -> (Debian package, folder inside the package, file glob relative to that folder).
# A glob with "**/" matches in sub-folders too; "<glob>.gz" files are matched and decompressed.
REGISTRY: dict[str, tuple[str, str, str]] = {
    # Debian 12 installation guide (amd64), Dutch translation: ~80 DocBook HTML pages.
    "install-guide-nl": ("installation-guide-amd64", "usr/share/doc/installation-guide-amd64/nl", "*.html"),
    # LibreOffice help, Dutch: ~2,560 HTML pages in nested folders (for scale tests).
    "libreoffice-help-nl": ("libreoffice-help-nl", "usr/share/libreoffice/help/nl/text", "**/*.html"),
}

MANIFEST = ".corpus.json"


class CorpusError(RuntimeError):
    """A corpus could not be fetched; the message is one line meant for the user."""


def cache_root() -> Path:
    env = os.environ.get("RAG_CACHE", "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ragnl"


def default_dest(name: str) -> Path:
    return cache_root() / "corpora" / name


def _has_files(folder: Path) -> bool:
    return folder.is_dir() and any(p.is_file() and not p.name.startswith(".") for p in folder.iterdir())


def _matches(rel: str, pattern: str) -> bool:
    """fnmatch on a relative posix path; '**/' also matches zero folders."""
    for pat in (pattern, pattern + ".gz"):
        if fnmatch.fnmatchcase(rel, pat):
            if "/" in rel and "/" not in pat:
                continue  # a plain glob only matches files directly in the folder
            return True
        if pat.startswith("**/") and "/" not in rel and fnmatch.fnmatchcase(rel, pat[3:]):
            return True
    return False


def _pages(base: Path, pattern: str) -> list[Path]:
    out = []
    for p in sorted(base.rglob("*")):
        if p.is_file() and _matches(p.relative_to(base).as_posix(), pattern):
            out.append(p)
    return out


def _find_base(root: Path, inner: str, pattern: str) -> Path:
    """The folder inside the unpacked package; if the layout differs, the best same-named folder."""
    base = root / inner
    if base.is_dir() and _pages(base, pattern):
        return base
    tail = Path(inner).name
    best, best_n = None, 0
    for cand in root.rglob(tail):
        if cand.is_dir():
            n = len(_pages(cand, pattern))
            if n > best_n:
                best, best_n = cand, n
    if best is None:
        raise CorpusError(f"no pages matching '{pattern}' under '{inner}' (or any '{tail}' folder) in the package")
    print(f"note: '{inner}' not in the package; using '{best.relative_to(root).as_posix()}'", file=sys.stderr)
    return best


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise CorpusError(f"'{cmd[0]}' not found: fetching corpora needs a Debian/Ubuntu system with apt and dpkg "
                          f"(or a pre-filled destination folder)")


def _last_error(proc: subprocess.CompletedProcess) -> str:
    lines = [ln.strip() for ln in (proc.stderr + "\n" + proc.stdout).splitlines() if ln.strip()]
    errs = [ln for ln in lines if ln.startswith("E:")] or lines
    return errs[-1] if errs else f"exit code {proc.returncode}"


def _flat_name(rel: str) -> str:
    name = rel.replace("/", "__")
    return name[:-3] if name.endswith(".gz") else name


def fetch(name: str, dest: str | Path | None = None) -> Path:
    """Fetch corpus ``name`` into ``dest`` (default: the cache folder) and return the folder."""
    if name not in REGISTRY:
        raise CorpusError(f"unknown corpus '{name}' (known: {', '.join(sorted(REGISTRY))})")
    package, inner, pattern = REGISTRY[name]
    out = Path(dest).expanduser() if dest else default_dest(name)
    if _has_files(out):
        return out
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise CorpusError(f"'{tool}' not found: fetching corpus '{name}' needs a Debian/Ubuntu system with apt "
                              f"and dpkg (or a pre-filled folder {out})")
    with tempfile.TemporaryDirectory(prefix=f"ragnl-{name}-") as tmp:
        work = Path(tmp)
        os.chmod(work, 0o755)  # lets apt's unprivileged download user write here
        proc = _run(["apt-get", "download", package], work)
        debs = sorted(work.glob("*.deb"))
        if proc.returncode != 0 or not debs:
            raise CorpusError(f"apt-get download {package} failed: {_last_error(proc)}"
                              + (" (try 'apt-get update' first)" if "Unable to locate" in proc.stderr else ""))
        deb = debs[0]
        version = _run(["dpkg-deb", "-f", str(deb), "Version"], work).stdout.strip()
        root = work / "root"
        proc = _run(["dpkg-deb", "-x", str(deb), str(root)], work)
        if proc.returncode != 0:
            raise CorpusError(f"dpkg-deb -x {deb.name} failed: {_last_error(proc)}")
        base = _find_base(root, inner, pattern)
        pages = _pages(base, pattern)
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
        try:
            seen: set[str] = set()
            for src in pages:
                flat = _flat_name(src.relative_to(base).as_posix())
                if flat in seen:
                    raise CorpusError(f"two pages map to the same flat name '{flat}'")
                seen.add(flat)
                if src.name.endswith(".gz"):
                    with gzip.open(src, "rb") as fi, open(staging / flat, "wb") as fo:
                        shutil.copyfileobj(fi, fo)
                else:
                    shutil.copyfile(src, staging / flat)
            (staging / MANIFEST).write_text(json.dumps(
                {"name": name, "package": package, "version": version, "path": base.relative_to(root).as_posix(),
                 "glob": pattern, "pages": len(pages)}, indent=2) + "\n", encoding="utf-8")
            if out.exists():
                if _has_files(out):  # filled meanwhile by another process
                    shutil.rmtree(staging)
                    return out
                shutil.rmtree(out)
            staging.rename(out)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Fetch a Dutch documentation corpus from a Debian package.")
    ap.add_argument("name", nargs="?", help=f"corpus name ({', '.join(sorted(REGISTRY))})")
    ap.add_argument("--dest", help="destination folder (default: $RAG_CACHE/corpora/NAME, "
                                   "else ~/.cache/ragnl/corpora/NAME)")
    ap.add_argument("--list", action="store_true", help="list the known corpora and exit")
    args = ap.parse_args(argv)
    if args.list:
        for n, (pkg, inner, pat) in sorted(REGISTRY.items()):
            print(f"{n}\t{pkg}\t{inner}/{pat}")
        return 0
    if not args.name:
        print(f"error: name a corpus ({', '.join(sorted(REGISTRY))})", file=sys.stderr)
        return 1
    try:
        folder = fetch(args.name, args.dest)
    except CorpusError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"error: {e.strerror or e}: {e.filename or ''}".rstrip(": "), file=sys.stderr)
        return 1
    n = sum(1 for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    print(f"{folder}\t{n} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
