"""Question sets (JSONL): loading, validation with clear messages, conversation ordering."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

TYPES = {"fact", "number", "date", "person", "list", "multi_doc", "english", "unanswerable"}
SPLITS = {"", "tune", "test"}


class DatasetError(ValueError):
    pass


@dataclass
class EvalItem:
    id: str
    question: str
    answer: str = ""
    must_include: list[list[str]] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    type: str = "fact"
    follows: str | None = None
    paraphrase: bool = False
    split: str = ""  # "tune" (may be tuned on) or "test" (judged on only)
    lang: str = "nl"
    note: str = ""

    @property
    def answerable(self) -> bool:
        return self.type != "unanswerable"


def load_set(path: str | Path) -> list[EvalItem]:
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"{p}: question set not found")
    items: list[EvalItem] = []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
        except json.JSONDecodeError as e:
            raise DatasetError(f"{p}:{n}: not valid JSON ({e.msg})")
        for key in ("id", "question"):
            if not isinstance(d.get(key), str) or not d[key].strip():
                raise DatasetError(f"{p}:{n}: missing or empty '{key}'")
        must = [[g.lower()] if isinstance(g, str) else [a.lower() for a in g] for g in d.get("must_include", [])]
        typ = d.get("type", "fact")
        if typ not in TYPES:
            raise DatasetError(f"{p}:{n}: unknown type '{typ}' (one of {', '.join(sorted(TYPES))})")
        split = d.get("split", "")
        if split not in SPLITS:
            raise DatasetError(f"{p}:{n}: unknown split '{split}' (tune or test)")
        lang = d.get("lang") or ("en" if typ == "english" else "nl")
        items.append(EvalItem(id=d["id"], question=d["question"], answer=d.get("answer", ""), must_include=must,
                              sources=list(d.get("sources", [])), evidence=list(d.get("evidence", [])), type=typ,
                              follows=d.get("follows"), paraphrase=bool(d.get("paraphrase", False)), split=split,
                              lang=lang, note=d.get("note", "")))
    ids = [i.id for i in items]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        raise DatasetError(f"{p}: duplicate ids {sorted(dup)}")
    known = set(ids)
    for it in items:
        if it.follows and it.follows not in known:
            raise DatasetError(f"{p}: item {it.id} follows unknown id {it.follows}")
    return items


def conversation_order(items: list[EvalItem]) -> list[EvalItem]:
    """Each follow-up right after the item it follows."""
    children: dict[str, list[EvalItem]] = {}
    for it in items:
        if it.follows:
            children.setdefault(it.follows, []).append(it)
    out: list[EvalItem] = []

    def visit(it: EvalItem) -> None:
        out.append(it)
        for ch in children.get(it.id, []):
            visit(ch)

    for it in items:
        if not it.follows:
            visit(it)
    return out
