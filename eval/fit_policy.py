"""Fit the answerability model of the refusal policy on tune-split eval runs.

    python -m eval.fit_policy RUN_DIR [RUN_DIR ...] [--features relevance,point_top,...]

Reads ``items.jsonl`` of runs made with the read strategy (their answers carry ``signals``), keeps
items of the ``tune`` split that reached the pointing step, and fits a logistic regression
(scikit-learn) of "answerable" on the signals. The threshold maximises balanced accuracy on the
same items. Prints the ``Answerability`` entry to paste into ``rag/config.py`` with a note of the
data it was fitted on. Refuses to read ``test`` items: the test split is for judging only.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

DEFAULT_FEATURES = ("relevance", "coverage", "point_top", "point_margin", "chosen_coverage", "type_ok")


def load_rows(run_dirs: list[str]) -> list[dict]:
    rows = []
    for d in run_dirs:
        for line in (Path(d) / "items.jsonl").read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            if r.get("split") != "tune":
                continue
            sig = (r.get("answer") or {}).get("signals") or {}
            if sig:
                rows.append({"answerable": r["type"] != "unanswerable", "signals": sig, "run": d, "id": r["id"]})
    return rows


def fit(rows: list[dict], features: tuple[str, ...], c: float = 1.0) -> dict:
    from sklearn.linear_model import LogisticRegression

    x = np.array([[r["signals"].get(f, 0.0) for f in features] for r in rows], dtype=float)
    y = np.array([1 if r["answerable"] else 0 for r in rows])
    model = LogisticRegression(C=c, class_weight="balanced", max_iter=1000).fit(x, y)
    p = model.predict_proba(x)[:, 1]
    best = (0.0, 0.5)
    for t in np.unique(np.round(p, 3)):
        pred = p >= t
        tpr = (pred & (y == 1)).sum() / max(1, (y == 1).sum())
        tnr = (~pred & (y == 0)).sum() / max(1, (y == 0).sum())
        if (tpr + tnr) / 2 > best[0]:
            best = ((tpr + tnr) / 2, float(t))
    return {"weights": dict(zip(features, model.coef_[0].round(4).tolist())), "bias": round(float(model.intercept_[0]), 4),
            "threshold": round(best[1], 3), "balanced_accuracy": round(best[0], 3), "n": len(rows),
            "n_unanswerable": int((y == 0).sum())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--features", default=",".join(DEFAULT_FEATURES))
    ap.add_argument("-C", type=float, default=1.0, help="inverse regularisation strength")
    a = ap.parse_args()
    rows = load_rows(a.runs)
    if not rows:
        raise SystemExit("no tune-split items with read-strategy signals in these runs")
    out = fit(rows, tuple(a.features.split(",")), a.C)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
