"""The atlas file read back: every cell's phrase, its three scores and its dossier.

`atlas-CHECKPOINT.npz` is plain arrays and one JSON string read without pickle, and records the
checkpoint's SHA-256: an atlas of other weights, or of an earlier format, is refused with the
command that rebuilds it. atlas.py builds it; docs/atlas.md has the details.
"""

import functools
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charmodel.analysis import background, explain
from charmodel.analysis.candidates import GROUPS
from charmodel.engine import layer_number
from charmodel.errors import CharModelError
from charmodel.run import folder as runfolder
from charmodel.run.corpus import sha256

FORMAT = 6  # 6: causal terms; a phrase scored alone (phrase_r), the background of the last three characters
# (context_r) and the phrase beyond it (beyond_r) (5: the profile reached back three characters; 4: explanations
# started from each cell's character profile; 3: what the model loses without each cell; 2: simulation r)
KINDS = ("h", "c")
FRAGMENT = 80  # characters per fragment for top and bottom contexts
TOP = 20  # top and bottom contexts per cell
CONTEXT = 40  # characters shown either side of a context's position
QUANTILES = 10  # equal-count activation bins...
PER_QUANTILE = 3  # ...and positions sampled from each
HISTOGRAM_BINS = 50
EFFECT = 5  # next characters a last-layer h cell most boosts, and most suppresses
RUNS_SHOWN = 5  # runs of characters a dossier names, after which the cell stands furthest above (and below) its
# mean after the character alone
_ARRAYS = ("mean", "std", "min", "max", "histogram", "top_position", "top_value", "bottom_position", "bottom_value",
           "quantile_position", "quantile_value", "quantile_edges", "char_mean", "terms", "weights", "intercept",
           "fit_r", "phrase_r", "context_r", "beyond_r", "term_r", "auc", "effect_chars", "effect_weights",
           "ablation_bits", "recovered", "profile", "context_profile", "context_fit_r", "both_background",
           "both_weights", "both_intercept")


NO_PHRASE = "no term says more than the last three characters"  # a cell without a phrase


def atlas_path(run, checkpoint: str) -> Path:
    return Path(run) / f"atlas-{checkpoint}.npz"


def build_command(run, checkpoint: str) -> str:
    return f"python -m charmodel atlas --run {run} --checkpoint {checkpoint}"


def cell_keys(layers: int) -> list[tuple[int, str]]:
    """(layer from 0, kind) in the order the atlas stores cells: layer by layer, h then c."""
    return [(l, k) for l in range(layers) for k in KINDS]


def coverage(first: np.ndarray, scores: dict, candidates: list, layers: int, units: int) -> dict:
    """Explained cells (phrase_r ≥ EXPLAINED_R) per (layer, kind) and per group of their first term,
    and the medians of the three scores. first: (N,) each cell's first term (-1: none); scores:
    {"phrase_r", "context_r", "beyond_r"} (N,) each, cells in atlas order."""
    phrase_r = scores["phrase_r"]
    ok = np.array([explain.explained(r) for r in phrase_r], dtype=bool)
    group = np.array([candidates[b].group if b >= 0 else None for b in first])
    by_part = {f"layer {layer_number(l)} {k}": {"cells": units, "explained": int(ok[i * units : (i + 1) * units].sum())}
               for i, (l, k) in enumerate(cell_keys(layers))}
    groups = {g: int((ok & (group == g)).sum()) for g in GROUPS}
    n = len(first)
    beyond = scores["beyond_r"]
    return {"cells": n, "explained": int(ok.sum()), "by_layer_kind": by_part, "by_group": groups,
            "long_context_share": round(groups["long"] / n, 4) if n else 0.0,
            **{f"median_{k}": _median(np.asarray(v, np.float64)) for k, v in scores.items()},
            "beyond_half": int((np.isfinite(beyond) & (beyond >= explain.EXPLAINED_R)).sum())}


def weighted_coverage(ablation_bits: np.ndarray, phrase_r: np.ndarray, min_r: float = explain.EXPLAINED_R) -> dict:
    """How much of what single cells carry sits in explained cells: the share of the summed
    ablation_bits (a negative one, where holding the cell helps, counts as 0) in cells whose
    phrase r reaches min_r. None where no cell costs anything (or none was measured)."""
    bits = np.maximum(np.nan_to_num(ablation_bits, nan=0.0), 0.0)
    ok = np.isfinite(phrase_r) & (phrase_r >= min_r)
    total = float(bits.sum())
    return {"ablation_bits": round(total, 5), "ablation_bits_explained": round(float(bits[ok].sum()), 5),
            "weighted_coverage": round(float(bits[ok].sum()) / total, 4) if total > 0 else None}


def _scores(arrays: dict) -> dict:
    return {k: arrays[k] for k in SCORES}


SCORES = ("phrase_r", "context_r", "beyond_r")  # each cell's three held-out scores (explain.py)


def _number(x, digits: int):
    return None if not np.isfinite(x) else round(float(x), digits)


def _median(x: np.ndarray):
    finite = x[np.isfinite(x)]
    return round(float(np.median(finite)), 4) if len(finite) else None


@dataclass
class Atlas:
    meta: dict
    arrays: dict
    path: Path

    @functools.cached_property
    def candidates(self) -> list[explain.Candidate]:
        """Built once per Atlas: terms() reads them for every cell."""
        return [explain.Candidate(**c) for c in self.meta["candidates"]]

    def index(self, layer: int, kind: str, cell: int) -> int:
        """Row of (layer from 0, kind, cell)."""
        return (layer * len(KINDS) + KINDS.index(kind)) * self.meta["units"] + cell

    def terms(self, i: int) -> list[dict]:
        """Row i's terms, in the order chosen (the first is the strongest alone): explanation
        (its phrase), name, group, metric, sign (+1/-1, its weight's), weight (cell units per unit
        of its signal) and r (its own held-out r, times its sign; None without one)."""
        cands, a = self.candidates, self.arrays
        out = []
        for j, w, r in zip(a["terms"][i], a["weights"][i], a["term_r"][i]):
            if j < 0:
                break
            c = cands[j]
            out.append({"explanation": c.phrase, "name": c.name, "group": c.group, "metric": c.metric,
                        "sign": 1 if w >= 0 else -1, "weight": round(float(w), 5),
                        "r": None if not np.isfinite(r) else round(float(r), 4)})
        return out

    @staticmethod
    def phrase(terms: list[dict]) -> str:
        """An explanation in words, from terms(): its terms with their signs, or NO_PHRASE."""
        return explain.phrase(terms) or NO_PHRASE

    def scores(self, i: int) -> dict:
        """Row i's three held-out scores (explain.py), None where there is none."""
        return {k: _number(self.arrays[k][i], 4) for k in SCORES}

    def cells(self) -> list[dict]:
        """Every cell with its explanation: layer (from 0), kind, cell, explanation (the phrase, or
        NO_PHRASE), terms, phrase_r (the phrase's held-out r: the explanation's score), context_r
        (what the last three characters already tell), beyond_r (what the phrase tells beyond them),
        each None without one; auc (held-out, for a one-term yes/no phrase; else None), direction
        (+1/-1: the first term's sign), group (the first term's; None without a term), explained
        (phrase_r ≥ 0.5), spread (std), ablation_bits (what holding it at its mean costs, bits per
        character) and recovered (the share of that its phrase alone wins back; None where it is not
        measured)."""
        U, out = self.meta["units"], []
        a = self.arrays
        for i in range(len(a["terms"])):
            terms = self.terms(i)
            layer, kind = divmod(i // U, len(KINDS))
            scores = self.scores(i)
            out.append({"layer": layer, "kind": KINDS[kind], "cell": i % U,
                        "explanation": self.phrase(terms), "terms": terms, **scores,
                        "auc": _number(a["auc"][i], 4),
                        "direction": terms[0]["sign"] if terms else 1, "group": terms[0]["group"] if terms else None,
                        "explained": explain.explained(scores["phrase_r"]), "spread": round(float(a["std"][i]), 4),
                        "ablation_bits": _number(a["ablation_bits"][i], 5), "recovered": _number(a["recovered"][i], 4)})
        return out

    def headline(self, chosen: tuple | None = None) -> dict | None:
        """The cell a run's front page opens on, as a cells() row: `chosen` (layer from 0, kind,
        cell; a person's pick, see runfolder.read_highlights) when its phrase explains it and tells
        what the last three characters do not (beyond_r ≥ EXPLAINED_R); else the explained cell whose
        phrase says most beyond three characters (the highest beyond_r); None when no cell is
        explained."""
        rows = [r for r in self.cells() if r["explained"]]
        for r in rows:
            if chosen is not None and (r["layer"], r["kind"], r["cell"]) == tuple(chosen) and \
                    r["beyond_r"] is not None and r["beyond_r"] >= explain.EXPLAINED_R:
                return r
        return max(rows, key=lambda r: r["beyond_r"] if r["beyond_r"] is not None else -1.0, default=None)

    def coverage(self) -> dict:
        """Explained cells per (layer, kind) and per group of their first term, the medians of the
        three scores; the share of what single cells carry that sits in explained cells
        (weighted_coverage); the median recovered; the stored replacement."""
        a = self.arrays
        out = coverage(a["terms"][:, 0], _scores(a), self.candidates, self.meta["layers"], self.meta["units"])
        return {**out, **weighted_coverage(a["ablation_bits"], a["phrase_r"]),
                "median_recovered": _median(a["recovered"]), "replacement": self.meta.get("replacement")}

    def background_values(self, layer: int, kind: str, cell: int, text: str) -> np.ndarray:
        """This cell's background at every character of `text` (layer from 0): its mean after the
        last one to three characters."""
        i = self.index(layer, kind, cell)
        a = self.arrays
        return background.profile_values(a["profile"][i][None], text, self.meta["vocab"], self.meta["contexts"],
                                         a["context_profile"][i][None])[:, 0]

    def simulate(self, layer: int, kind: str, cell: int, text: str, way: str = "phrase") -> np.ndarray:
        """What stands in for this cell at every character of `text` (layer from 0): its phrase
        (the explanation), its background ("context"), or both fitted together ("both")."""
        i = self.index(layer, kind, cell)
        a = self.arrays
        if way == "context":
            return self.background_values(layer, kind, cell, text)
        if way == "both":
            return explain.predict(self.candidates, a["terms"][i], a["both_weights"][i], a["both_intercept"][i], text,
                                   self.meta["vocab"], self.background_values(layer, kind, cell, text),
                                   a["both_background"][i])
        return explain.predict(self.candidates, a["terms"][i], a["weights"][i], a["intercept"][i], text,
                               self.meta["vocab"])

    def dossier(self, layer: int, kind: str, cell: int) -> dict:
        """What the app shows for one cell (layer from 0); positions index the corpus text."""
        i = self.index(layer, kind, cell)
        a, vocab = self.arrays, self.meta["vocab"]
        out = {"summary": {k: float(a[k][i]) for k in ("mean", "std", "min", "max")},
               "histogram": [{"from": float(a["min"][i] + (a["max"][i] - a["min"][i]) * b / HISTOGRAM_BINS),
                              "to": float(a["min"][i] + (a["max"][i] - a["min"][i]) * (b + 1) / HISTOGRAM_BINS),
                              "count": int(c)} for b, c in enumerate(a["histogram"][i])],
               "top": list(zip(a["top_position"][i].tolist(), a["top_value"][i].tolist())),
               "bottom": list(zip(a["bottom_position"][i].tolist(), a["bottom_value"][i].tolist())),
               "quantiles": [{"from": float(a["quantile_edges"][i, q]), "to": float(a["quantile_edges"][i, q + 1]),
                              "samples": list(zip(a["quantile_position"][i, q].tolist(), a["quantile_value"][i, q].tolist()))}
                             for q in range(QUANTILES)],
               "char_profile": [{"char": ch, "mean": float(m)} for ch, m in zip(vocab, a["char_mean"][i])],
               "terms": self.terms(i), "explanation": self.phrase(self.terms(i)), **self.scores(i),
               "fit_r": _number(a["fit_r"][i], 4),
               "auc": None if not np.isfinite(a["auc"][i]) else float(a["auc"][i]),
               "effect": None, "ablation_bits": _number(a["ablation_bits"][i], 5),
               "recovered": _number(a["recovered"][i], 4), "runs": self.runs(i)}
        if layer == self.meta["layers"] - 1 and kind == "h":
            chars, w = a["effect_chars"][cell], a["effect_weights"][cell]
            out["effect"] = {"boosts": [(vocab[c], float(x)) for c, x in zip(chars[:EFFECT], w[:EFFECT])],
                             "suppresses": [(vocab[c], float(x)) for c, x in zip(chars[EFFECT:], w[EFFECT:])]}
        return out

    def runs(self, i: int, k: int = RUNS_SHOWN) -> dict:
        """Row i's profile further back: the k runs of the last characters after which the cell
        stands furthest above, and below, its mean after the last character alone, as ("the", the
        difference in the cell's units: the run's correction plus its shorter runs'), largest first."""
        vocab, codes = self.meta["vocab"], self.meta["contexts"]
        correction = self.arrays["context_profile"][i].astype(np.float64)
        column = {c: j for j, c in enumerate(codes)}
        base = len(vocab) + 1
        total = correction.copy()
        for j, code in enumerate(codes):  # a run of three stands on its run of two, and so on
            length = len(background.context_text(code, vocab))
            total[j] += sum(correction[column[code % base**m]] for m in range(2, length) if code % base**m in column)
        show = lambda j: (background.context_text(codes[j], vocab), round(float(total[j]), 4))
        order = np.argsort(-total, kind="stable")
        return {"above": [show(j) for j in order[:k] if total[j] > 0],
                "below": [show(j) for j in order[::-1][:k] if total[j] < 0]}

    def part(self, position: int) -> str:
        return "training" if position < self.meta["train_chars"] else "validation"


def load(run, checkpoint: str) -> Atlas:
    """The atlas of this checkpoint, checked against the checkpoint's current weights. A missing,
    damaged or stale file is a CharModelError whose message names the command that rebuilds it."""
    path = atlas_path(run, checkpoint)
    rebuild = f"rebuild it with `{build_command(run, checkpoint)}`"
    if not path.is_file():
        raise CharModelError(f"run {Path(run).name} has no atlas for checkpoint {checkpoint}; build it with "
                             f"`{build_command(run, checkpoint)}`.")
    try:
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(str(f["meta"]))
            arrays = {k: f[k] for k in _ARRAYS} if meta.get("format") == FORMAT else None
            if arrays is not None:  # stored as int8 steps of a scale per cell (background.quantised)
                arrays["context_profile"] = background.dequantised(arrays["context_profile"], f["context_scale"])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError, json.JSONDecodeError) as e:
        raise CharModelError(f"{path.name} is damaged ({e.__class__.__name__}); {rebuild}.") from None
    if arrays is None:
        raise CharModelError(f"{path.name} is in atlas format {meta.get('format')}, not {FORMAT} (explanations are now "
                             f"phrases of causal terms, scored alone and beyond the last three characters); {rebuild}.")
    weights = runfolder.checkpoint_path(run, checkpoint)
    if not weights.is_file() or meta.get("weights_sha256") != sha256(weights):
        raise CharModelError(f"{path.name} was built for other weights than checkpoint {checkpoint} has now; {rebuild}.")
    n = meta["layers"] * len(KINDS) * meta["units"]
    if any(len(v) != (meta["units"] if k.startswith("effect") else n) for k, v in arrays.items()) or \
            arrays["context_profile"].shape[1] != len(meta.get("contexts", ())):
        raise CharModelError(f"{path.name} is damaged (its arrays do not match its cells); {rebuild}.")
    return Atlas(meta, arrays, path)
