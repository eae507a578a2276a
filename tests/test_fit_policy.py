import json

import numpy as np
import pytest

from eval import fit_policy as F


def test_threshold_by_balanced_accuracy_or_by_a_false_refusal_budget_hand_computed():
    p = np.array([0.9, 0.8, 0.5, 0.3, 0.6, 0.2])
    y = np.array([1, 1, 1, 1, 0, 0])
    # t=0.3 answers the four answerable items and refuses one of two unanswerable ones: (1 + 0.5) / 2
    assert F.pick_threshold(p, y) == (0.3, 0.75)  # t=0.8 ties (0.5 + 1) / 2: the lower one stays
    # at most a quarter of the answerable ones refused: t <= 0.5, where 0.3 and 0.5 both refuse one of two
    assert F.pick_threshold(p, y, 0.25) == (0.3, 0.5)
    # half may be refused: t=0.8 refuses both unanswerable items
    assert F.pick_threshold(p, y, 0.5) == (0.8, 1.0)


def test_fit_reads_only_tune_items_with_signals(tmp_path):
    rows = [{"id": f"a{i}", "split": "tune", "type": "fact", "answer": {"signals": {"verify_logit": 1.0 + i}}}
            for i in range(6)]
    rows += [{"id": f"u{i}", "split": "tune", "type": "unanswerable", "answer": {"signals": {"verify_logit": -1.0 - i}}}
             for i in range(3)]
    rows += [{"id": "t1", "split": "test", "type": "unanswerable", "answer": {"signals": {"verify_logit": 9.0}}},
             {"id": "n1", "split": "tune", "type": "fact", "answer": {"refused": True}}]
    (tmp_path / "items.jsonl").write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    loaded = F.load_rows([str(tmp_path)])
    assert sorted(r["id"] for r in loaded) == sorted([f"a{i}" for i in range(6)] + [f"u{i}" for i in range(3)])
    out = F.fit(loaded, ("verify_logit",), max_false_refusals=0.0)
    assert out["weights"]["verify_logit"] > 0 and out["unanswerable_refused"] == pytest.approx(1.0)
    assert out["n"] == 9 and out["n_unanswerable"] == 3
