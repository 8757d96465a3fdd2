"""The atlas's scores in words, as the app, the CLI and the model cards say them: what is scored,
and against what. No Streamlit here."""

from charmodel.analysis.explain import EXPLAINED_R


def _r(v) -> str:
    return "–" if v is None else f"{v:.2f}"


def _share(v) -> str:
    return "–" if v is None else f"{v:.0%}"


def dossier_sentence(d: dict) -> str:
    """The dossier's first line: the phrase and its phrase_r, then the background's context_r and
    the phrase's beyond_r in one sentence (d: atlas.Atlas.dossier)."""
    if not d["terms"]:
        return (f"No phrase: no term says more about this cell than the last three characters (what they already "
                f"tell: context r {_r(d['context_r'])}).")
    verdict = "explains it" if d["phrase_r"] is not None and d["phrase_r"] >= EXPLAINED_R else \
        f"is too weak to explain it (under {EXPLAINED_R})"
    return (f"**{d['explanation']}**: phrase r **{_r(d['phrase_r'])}** on held-out text, alone (fit part "
            f"{_r(d['fit_r'])}); it {verdict}. The last three characters already tell context r "
            f"{_r(d['context_r'])}; beyond them, the phrase tells beyond r {_r(d['beyond_r'])}.")


def headline_sentence(best: dict) -> str:
    """Home's line on its headline cell (an atlas_file.Atlas.cells row; layers from 0)."""
    beyond = "" if best["beyond_r"] is None else f"; beyond what the last three characters tell, r {best['beyond_r']:.2f}"
    return (f"**The headline cell**: layer {best['layer'] + 1} {best['kind']} cell {best['cell']}, explained by the atlas "
            f"as *{best['explanation']}* (phrase r {best['phrase_r']:.2f} on text it was not fitted on{beyond})")


def replacement_summary(r: dict, chars: int, median_recovered=None) -> str:
    """The stored model-wide replacement (replace.replace_cells) in words, for the Atlas page."""
    cell_by_cell = "" if median_recovered is None else (
        f" Cell by cell, among those the model uses, the median phrase alone keeps {_share(median_recovered)} of what "
        "its cell gives.")
    return (f"Replaced all at once by the last three characters plus their phrases, the {r['cells']:,} explained "
            f"cells win back **{_share(r['beyond_context'])}** of what the model knows beyond three characters: "
            f"{r['bpc']:.3f} bits per character as it is, {r['bpc_context']:.3f} with each cell at its mean after the "
            f"last three characters, {r['bpc_both']:.3f} with its phrase added. By their phrases alone: "
            f"{r['bpc_phrase']:.3f}, against {r['bpc_means']:.3f} held at their means ({_share(r['recovered'])} "
            f"recovered). Over the first {chars:,} validation characters.{cell_by_cell}")
