"""Input attribution: NumPy gradients through time against TensorFlow's, occlusion, integrated gradients."""

import json

import numpy as np
import pytest

from charmodel import CharModelError
from charmodel.analysis import saliency
from charmodel.engine import Engine
from charmodel.run import folder as runfolder
from charmodel.run.handle import Run

from .test_cli import cli


def keras_gradient(weights, layers, units, emb_seq, target, next_id=None):
    """d target / d input embeddings with TensorFlow's GradientTape, Keras LSTMs on the same weights."""
    import keras
    import tensorflow as tf

    x = tf.constant(emb_seq[None])
    lstms = []
    for l in range(layers):
        lstm = keras.layers.LSTM(units, return_sequences=True, return_state=True)
        lstm.build((None, None, x.shape[-1] if l == 0 else units))
        lstm.set_weights([weights[f"lstm{l}_kernel"], weights[f"lstm{l}_recurrent"], weights[f"lstm{l}_bias"]])
        lstms.append(lstm)
    with tf.GradientTape() as tape:
        tape.watch(x)
        h = x
        for l, lstm in enumerate(lstms):
            h, h_last, c_last = lstm(h)
            if not target.get("next") and l == target["layer"]:
                value = (h_last if target["kind"] == "h" else c_last)[0, target["cell"]]
                break
        else:
            logits = h_last @ weights["dense_kernel"] + weights["dense_bias"]
            value = tf.nn.log_softmax(logits)[0, next_id]
    return np.asarray(tape.gradient(value, x))[0]


@pytest.mark.parametrize("target", [{"layer": 0, "kind": "h", "cell": 3}, {"layer": 0, "kind": "c", "cell": 5},
                                    {"layer": 1, "kind": "h", "cell": 7}, {"layer": 1, "kind": "c", "cell": 11},
                                    {"next": True}])
def test_numpy_gradient_matches_tensorflow(random_run, small_text, target):
    weights = runfolder.load_weights_npz(random_run / "best.npz")
    engine = Engine.load(random_run)
    text = small_text[:61]
    ids = engine.vocab.encode(text)
    position = 59  # the window is the whole text up to here, from a zero state, as Keras starts
    ours, start, _ = saliency.gradient(engine, ids, position, target, window=60)
    theirs = keras_gradient(weights, 2, 24, engine.emb[ids[: position + 1]], target, ids[position + 1])
    assert start == 0 and ours.shape == theirs.shape
    assert np.linalg.norm(ours - theirs) / np.linalg.norm(theirs) < 1e-4


def test_gradient_from_a_carried_state_matches_finite_differences(random_run, small_text):
    """A window that starts mid-text: the carry before it is held fixed."""
    engine = Engine.load(random_run)
    text = small_text[:300]
    ids = engine.vocab.encode(text)
    target = {"layer": 1, "kind": "c", "cell": 2}
    grad, start, _ = saliency.gradient(engine, ids, 250, target, window=40)
    assert start == 211
    carry = saliency.carry_before(engine, ids, start)
    x = engine.emb[ids[start:251]].astype(np.float64)

    def value(x):
        _, rec, _ = engine.forward(ids[None, start:251], carry, record=("c",), layers=[1],
                                   inputs=(0, x[:, None, :].astype(np.float32)))
        return float(rec[(1, "c")][0, -1, 2])

    for s, e in ((39, 0), (30, 3), (5, 1)):
        step = np.zeros_like(x)
        step[s, e] = 1e-2
        numeric = (value(x + step) - value(x - step)) / 2e-2
        assert numeric == pytest.approx(grad[s, e], abs=2e-3)


def test_occlusion_scores_are_the_change_when_a_character_is_replaced(random_run, small_text):
    engine = Engine.load(random_run)
    text = small_text[:120]
    target = {"layer": 1, "kind": "h", "cell": 4}
    result = saliency.attribute(engine, text, 100, target, "occlusion", window=50)
    assert result["start"] == 51 and len(result["scores"]) == 50
    assert result["neutral"] == max((ch for ch in set(text) if not ch.isspace()), key=lambda ch: (text.count(ch), -ord(ch)))
    ids = engine.vocab.encode(text)
    for s in (51, 77, 100):  # one by one, without the batch
        changed = ids.copy()
        changed[s] = engine.vocab.index[result["neutral"]]
        _, rec, _ = engine.forward(changed[None, :101], record=("h",), layers=[1])
        assert result["scores"][s - 51] == pytest.approx(result["target"] - rec[(1, "h")][0, -1, 4], abs=1e-4)


def test_integrated_gradients_are_complete(random_run, small_text):
    engine = Engine.load(random_run)
    result = saliency.attribute(engine, small_text[:90], 80, {"next": True}, "ig", window=30, steps=64)
    change = result["target"] - result["baseline"]
    assert abs(result["completeness"]) < 0.02 * max(abs(change), 1e-3) + 1e-3


def test_bad_attributions_are_one_line_errors(random_run, small_text):
    engine = Engine.load(random_run)
    text = small_text[:50]
    cases = [((60, {"next": True}), "outside the text"), ((49, {"next": True}), "last character"),
             ((10, {"layer": 4, "kind": "h", "cell": 0}), "layer 5 does not exist"),
             ((10, {"layer": 0, "kind": "h", "cell": 99}), "cell 99 does not exist")]
    for (position, target), message in cases:
        with pytest.raises(CharModelError, match=message):
            saliency.attribute(engine, text, position, target)
    with pytest.raises(CharModelError, match="not one of"):
        saliency.attribute(engine, text, 10, {"next": True}, "lime")
    with pytest.raises(CharModelError, match="the window must be 1–50 characters"):
        saliency.attribute(engine, text, 10, {"next": True}, window=51)


def test_saliency_cli(random_run):
    out = cli("saliency", "--run", random_run, "--text", "Alice was beginning to get very tired", "--position", 30,
              "--layer", 2, "--cell", 3, "--kind", "c", "--window", 20, "--json")
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert len(d["scores"]) == len(d["chars"]) == 20 and d["method"] == "occlusion"
    out = cli("saliency", "--run", random_run, "--text", "Alice was", "--position", 3, "--next-char", "--method", "gxi",
              "--json")
    assert out.returncode == 0 and len(json.loads(out.stdout)["scores"]) == 4
    bad = cli("saliency", "--run", random_run, "--text", "Alice", "--position", 9, "--next-char")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "outside the text" in bad.stderr


def test_occlusion_finds_the_quotation_mark_that_switched_the_shipped_cell_on():
    """The issue's sanity check: the Alice quotation cell (layer 2 c 492) at the 'b' of 'better'.
    A latched cell has small local gradients: gradient x input ranks the opening mark far down."""
    from .conftest import ROOT

    run = ROOT / "weights" / "alice"
    engine = Engine.load(run)
    text = "Alice looked at the Hatter for some time, and then `I think you might do something better with the time"
    target = {"layer": 1, "kind": "c", "cell": 492}
    corpus = Run.open(run).split()[0]
    occluded = saliency.attribute(engine, text, text.index("better"), target, "occlusion", corpus=corpus)
    assert occluded["neutral"] == "e"
    assert saliency.rank_of(occluded["scores"], text.index("`")) == 1
    gxi = saliency.attribute(engine, text, text.index("better"), target, "gxi", corpus=corpus)
    assert saliency.rank_of(gxi["scores"], text.index("`")) > 5
