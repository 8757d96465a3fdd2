"""What the cells learned. Every analysis reads the engine; none imports TensorFlow. In
dependency order:

    cells      hypotheses about the text (features), and cells ranked against them
    predicates where each character sits: after marks, inside pairs, strings, lines
    candidates every kind of candidate explanation, registered once: name, phrase, group, signal
    explain    explanations chosen from the candidates and scored by simulation
    atlas      every cell of a run explained, with a dossier per cell, in one file
    ablate     what the model loses without a cell
    replace    explained cells replaced by their explanations: what the model keeps
    probe      sparse probes: how many cells carry a concept
    saliency   which earlier characters drive a value
    study      select-and-match (LSTMVis), one cell in depth, gate views, LSTMVis export
    compare    two checkpoints side by side
"""

from charmodel.analysis import cells, predicates, candidates, explain, atlas, ablate, replace, probe, saliency, study, compare  # noqa: F401
