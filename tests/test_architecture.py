"""Architecture rules that keep the seams: the library never imports its front ends."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FRONT_ENDS = {"ui", "eval", "bench", "cli", "tests"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out


def test_rag_never_imports_front_ends():
    bad = {}
    for f in sorted((ROOT / "rag").rglob("*.py")):
        hit = _imports(f) & FRONT_ENDS
        if hit:
            bad[str(f.relative_to(ROOT))] = sorted(hit)
    assert bad == {}


def test_importing_rag_loads_no_front_end():
    import subprocess
    import sys

    code = ("import sys, rag, rag.assistant, rag.answer.policy, rag.stores.factory, rag.ingest.pipeline; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in %r))" % (FRONT_ENDS,))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


def test_front_ends_use_the_public_api_only():
    """The UI and the eval runner reach the library through ``Assistant`` and plain data types,
    never through store or stage internals."""
    allowed = {"rag", "rag.config", "rag.types", "rag.ingest.loaders", "rag.ingest.sentences", "rag.text",
               "rag.answer.binding"}
    for f in list((ROOT / "ui").glob("*.py")) + list((ROOT / "eval").glob("*.py")):
        tree = ast.parse(f.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.startswith("rag"):
                assert node.module in allowed, f"{f.name} imports {node.module}"
