"""Fit the answerability model of the refusal policy on tune-split eval runs.

    python -m eval.fit_policy RUN_DIR [RUN_DIR ...] [--features verify_logit] [--max-false-refusals 0.08]

Reads ``items.jsonl`` of runs whose answers carry ``signals`` (the read strategy's pointing signals,
or the copy strategy's yes/no verification), keeps items of the ``tune`` split that reached that step,
and fits a logistic regression (scikit-learn) of "answerable" on the signals. The threshold maximises
balanced accuracy on the same items or, with ``--max-false-refusals``, refuses as many unanswerable
questions as it can while refusing at most that share of the answerable ones. Prints the
``Answerability`` entry to paste into ``rag/config.py`` with a note of the data it was fitted on.
Refuses to read ``test`` items: the test split is for judging only.
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


def pick_threshold(p: np.ndarray, y: np.ndarray, max_false_refusals: float | None = None) -> tuple[float, float]:
    """(threshold, its score): answer when P(answerable) >= threshold. Default: the best balanced accuracy;
    with ``max_false_refusals``: the most unanswerable items refused while at most that share of the
    answerable ones is (ties: the lower threshold). Score = balanced accuracy or the share of
    unanswerable items refused."""
    best = (0.0, 0.0)
    for t in np.unique(np.round(p, 3)):
        pred = p >= t
        tpr = (pred & (y == 1)).sum() / max(1, (y == 1).sum())
        tnr = (~pred & (y == 0)).sum() / max(1, (y == 0).sum())
        if max_false_refusals is None:
            score = (tpr + tnr) / 2
        elif 1 - tpr <= max_false_refusals + 1e-9:
            score = tnr
        else:
            continue
        if score > best[1]:
            best = (float(t), float(score))
    return best


def fit(rows: list[dict], features: tuple[str, ...], c: float = 1.0, max_false_refusals: float | None = None) -> dict:
    from sklearn.linear_model import LogisticRegression

    x = np.array([[r["signals"].get(f, 0.0) for f in features] for r in rows], dtype=float)
    y = np.array([1 if r["answerable"] else 0 for r in rows])
    model = LogisticRegression(C=c, class_weight="balanced", max_iter=1000).fit(x, y)
    p = model.predict_proba(x)[:, 1]
    t, score = pick_threshold(p, y, max_false_refusals)
    return {"weights": dict(zip(features, model.coef_[0].round(4).tolist())), "bias": round(float(model.intercept_[0]), 4),
            "threshold": round(t, 3),
            ("balanced_accuracy" if max_false_refusals is None else "unanswerable_refused"): round(score, 3),
            "n": len(rows), "n_unanswerable": int((y == 0).sum())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--features", default=",".join(DEFAULT_FEATURES))
    ap.add_argument("-C", type=float, default=1.0, help="inverse regularisation strength")
    ap.add_argument("--max-false-refusals", type=float, default=None,
                    help="threshold: refuse at most this share of the answerable items (default: best balanced accuracy)")
    a = ap.parse_args()
    rows = load_rows(a.runs)
    if not rows:
        raise SystemExit("no tune-split items with answer signals in these runs")
    out = fit(rows, tuple(a.features.split(",")), a.C, a.max_false_refusals)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
