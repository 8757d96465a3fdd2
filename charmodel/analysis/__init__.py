"""What the cells learned. Every analysis reads the engine; none imports TensorFlow. In
dependency order:

    cells      hypotheses about the text (features), and cells ranked against them
    predicates where each character sits: after marks, inside pairs, strings, lines
    candidates every kind of candidate term, registered once: name, phrase, group, causal signal
    stats      ranks, AUC, moments and Pearson r over many columns at once
    background a cell's mean after the last three characters: what an explanation is measured beyond
    explain    phrases chosen from the candidates, and their three scores
    atlas_file the atlas file read back: every cell's phrase, its scores, its dossier
    atlas      the atlas build: every cell of a run explained, with a dossier per cell, in one file
    ablate     what the model loses without a cell
    replace    explained cells replaced by their backgrounds and phrases: what the phrases win back
    probe      sparse probes: how many cells carry a concept
    saliency   which earlier characters drive a value
    study      select-and-match (LSTMVis), one cell in depth, gate views, LSTMVis export
    compare    two checkpoints side by side
"""

from charmodel.analysis import cells, predicates, candidates, stats, background, explain, atlas_file, atlas, ablate, replace, probe, saliency, study, compare  # noqa: F401
