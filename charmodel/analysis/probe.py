"""Sparse probes: how many cells carry a concept.

An L1-regularised logistic regression reads a yes/no hypothesis from all cells of the chosen
layers and kinds at once (standardised with the fit text's mean and deviation). Sweeping the
regularisation strength trades cells for accuracy: the curve of held-out AUC against the number
of cells with a non-zero weight says whether a concept lives in one cell or is spread over many
(the sentiment-neuron question). Fitted on the last FIT_CHARS characters of the training text,
scored on the validation text. scikit-learn does the fitting (liblinear); no TensorFlow.
"""

import numpy as np

from charmodel.analysis.cells import auc_columns, batched_activations
from charmodel.engine import Engine
from charmodel.errors import CharModelError

FIT_CHARS = 60_000  # the end of the training text, next to the validation text
STRENGTHS = (0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01)  # C, the inverse of the L1 strength: for 2 x 512
# standardised cells on 60,000 characters of Alice, from 5 to about 260 cells
NEAR_BEST = 0.005  # the chosen strength: the fewest cells whose AUC is within this of the best


def _matrix(activations: dict, keys: list) -> np.ndarray:
    return np.concatenate([np.asarray(activations[k], dtype=np.float32) for k in keys], axis=1)


def probe(engine: Engine, train_text: str, val_text: str, signal_of, layers=None, kinds=("h", "c"),
          strengths=STRENGTHS, progress=None, fit_chars: int = FIT_CHARS) -> dict:
    """Fit the sparse probes for `signal_of(text) -> bool array` and score them on the validation text.

    Returns {"curve": [{"C", "cells", "auc"}], "single": the best single cell (chosen on the fit
    text, scored on validation: {layer, kind, cell, auc}), "chosen": {"C", "auc", "cells": [{layer,
    kind, cell, weight}] largest weight first}}. Layers counted from 0. fit_chars: how much of
    the training text's end to fit on; memory grows with it (liblinear keeps its own float64 copy:
    the command line's 60,000 characters of 2 x 512 cells peaked at 5.6 GB here)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    fit_text = train_text[-fit_chars:]
    signal = signal_of(fit_text + val_text)  # computed over both, so a quotation open at the seam counts
    y_fit, y_val = signal[: len(fit_text)], signal[len(fit_text) :]
    for part, y in (("fit", y_fit), ("validation", y_val)):
        if y.dtype != bool or y.min() == y.max():
            raise CharModelError(f"the hypothesis is constant over the {part} text (all 0 or all 1); a probe "
                                 "cannot be fitted. Pick another one.")
    layers = list(range(engine.layers)) if layers is None else list(layers)
    keys = [(l, k) for l in layers for k in kinds]
    x_fit = _matrix(batched_activations(engine, fit_text, kinds=kinds, layers=layers), keys)
    x_val = _matrix(batched_activations(engine, fit_text + val_text, kinds=kinds, layers=layers), keys)[len(fit_text) :]
    mean, std = x_fit.mean(axis=0), x_fit.std(axis=0)
    std[std == 0] = 1
    x_fit -= mean
    x_fit /= std
    x_val -= mean
    x_val /= std
    U = engine.units
    name = lambda j: {"layer": keys[int(j) // U][0], "kind": keys[int(j) // U][1], "cell": int(j) % U}
    fit_auc = auc_columns(x_fit, y_fit)
    j = int(np.argmax(np.abs(fit_auc - 0.5)))
    val_auc = auc_columns(x_val[:, j : j + 1], y_val)[0]
    single = {**name(j), "auc": round(float(val_auc if fit_auc[j] >= 0.5 else 1 - val_auc), 4)}  # fit's direction
    x_fit = x_fit.astype(np.float64)  # liblinear works in float64: convert once, not once per fit
    curve, models = [], []
    for i, C in enumerate(strengths):
        model = LogisticRegression(C=float(C), l1_ratio=1, solver="liblinear", max_iter=200, random_state=0)
        model.fit(x_fit, y_fit)
        w = model.coef_[0]
        auc = roc_auc_score(y_val, x_val @ w) if np.any(w) else 0.5
        curve.append({"C": float(C), "cells": int(np.count_nonzero(w)), "auc": round(float(auc), 4)})
        models.append(w)
        if progress is not None:
            progress((i + 1) / len(strengths))
    best = max(d["auc"] for d in curve)
    pick = min((i for i, d in enumerate(curve) if d["auc"] >= best - NEAR_BEST), key=lambda i: curve[i]["cells"])
    w = models[pick]
    used = sorted(np.flatnonzero(w), key=lambda j: -abs(w[j]))
    return {"curve": curve, "single": single,
            "chosen": {"C": curve[pick]["C"], "auc": curve[pick]["auc"],
                       "cells": [{**name(j), "weight": round(float(w[j]), 4)} for j in used]}}
