"""Two checkpoints of a run side by side: how similar their layers are, and which cells changed
what they explain.

Linear CKA (centred kernel alignment; Kornblith et al. 2019) compares two layers' activations on
the same text: 1 when one is a rotation and uniform scaling of the other, near 0 when they share
no linear structure, whatever the order of the cells. Cells are then compared through the two
checkpoints' atlases: a cell's best explanation may change, or keep its name and change its
held-out score. No TensorFlow.
"""

import numpy as np

from charmodel.analysis import atlas
from charmodel.analysis.cells import batched_activations
from charmodel.engine import Engine

CKA_CHARS = 3000  # validation characters the layers are compared on


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA of (T, n) and (T, m) activations of the same T characters."""
    x = np.asarray(x, np.float64) - np.mean(x, axis=0)
    y = np.asarray(y, np.float64) - np.mean(y, axis=0)
    cross = np.linalg.norm(x.T @ y) ** 2
    norm = np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)
    return float(cross / norm) if norm > 0 else 0.0


def layer_similarity(a: Engine, b: Engine, text: str) -> list[dict]:
    """[{layer (from 0), kind, cka}] for h and c of every layer, both engines on `text`."""
    xa, xb = batched_activations(a, text), batched_activations(b, text)
    return [{"layer": l, "kind": k, "cka": round(linear_cka(xa[(l, k)], xb[(l, k)]), 4)} for (l, k) in sorted(xa)]


def changed_cells(first: atlas.Atlas, second: atlas.Atlas, top: int = 20) -> list[dict]:
    """The cells whose phrase's held-out r (phrase_r) moved most between two atlases of the
    same architecture (the explanation itself may have changed): [{layer (from 0), kind, cell,
    before, after, score_before, score_after, change, explanation_changed}], largest |change| first."""
    a, b = first.cells(), second.cells()
    if len(a) != len(b):
        raise ValueError("the two atlases cover different cells")
    out = []
    for x, y in zip(a, b):
        sa, sb = x["phrase_r"], y["phrase_r"]
        out.append({"layer": x["layer"], "kind": x["kind"], "cell": x["cell"], "before": x["explanation"],
                    "after": y["explanation"], "score_before": sa, "score_after": sb,
                    "change": None if sa is None or sb is None else round(sb - sa, 4),
                    "explanation_changed": x["explanation"] != y["explanation"]})
    out.sort(key=lambda d: -abs(d["change"] or 0))
    return out[:top]
