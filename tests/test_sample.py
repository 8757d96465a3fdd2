import subprocess
import sys

import numpy as np
import pytest

from charmodel import CharModelError
from charmodel.engine import Engine, softmax
from charmodel.engine.sampling import generate

from .conftest import ROOT


def test_same_seed_gives_same_text_and_other_seed_differs(random_run):
    e = Engine.load(random_run)
    a = generate(e, "Alice ", 200, temperature=1.0, seed=3)
    assert a == generate(e, "Alice ", 200, temperature=1.0, seed=3)
    assert a != generate(e, "Alice ", 200, temperature=1.0, seed=4)
    assert len(a[0]) == 200 and not e.vocab.unknown(a[0])


def test_same_seed_gives_same_text_across_processes(random_run):
    code = (
        "from charmodel.engine import Engine; from charmodel.engine.sampling import generate; "
        f"print(generate(Engine.load({str(random_run)!r}), 'the ', 150, 0.9, seed=11)[0], end='')"
    )
    outs = [subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
            for _ in range(2)]
    assert outs[0] == outs[1] == generate(Engine.load(random_run), "the ", 150, 0.9, seed=11)[0]


def test_temperature_zero_is_greedy_argmax(random_run):
    e = Engine.load(random_run)
    text = generate(e, "Alice", 30, temperature=0, seed=1)[0]
    assert text == generate(e, "Alice", 30, temperature=0, seed=999)[0]
    # replay: every chosen character is the argmax after the text so far
    logits, _, _ = e.forward(e.vocab.encode("Alice" + text)[None])
    assert e.vocab.decode(logits[0, 4:-1].argmax(axis=1)) == text


def test_top_k_limits_choices_to_the_k_most_likely(random_run):
    e = Engine.load(random_run)
    text = generate(e, "Alice", 300, temperature=2.0, seed=5, top_k=2)[0]
    logits, _, _ = e.forward(e.vocab.encode("Alice" + text)[None])
    top2 = np.argsort(-logits[0, 4:-1], axis=1)[:, :2]
    chosen = e.vocab.encode(text)
    assert all(c in row for c, row in zip(chosen, top2))


def test_samples_come_as_a_batch_with_their_probabilities(random_run):
    e = Engine.load(random_run)
    texts, probs = generate(e, "Alice ", 100, temperature=1.0, seed=2, samples=4, return_probs=True)
    assert len(texts) == 4 and len(set(texts)) > 1 and probs.shape == (4, 100)
    # the probability reported for a character is the model's, at temperature 1
    logits, _, _ = e.forward(e.vocab.encode("Alice " + texts[2])[None])
    p = softmax(logits[0].astype(np.float64))[5:-1]
    want = p[np.arange(100), e.vocab.encode(texts[2])]
    assert np.allclose(probs[2], want, atol=1e-5)


def test_unknown_prime_characters_are_named(random_run):
    e = Engine.load(random_run)
    with pytest.raises(CharModelError, match=r"prime text has 2 character\(s\).*'€', '✓'"):
        generate(e, "Alice € ✓")


@pytest.mark.parametrize("kwargs, message", [
    (dict(temperature=-1), "temperature"),
    (dict(length=-5), "length"),
    (dict(top_k=0), "top-k"),
    (dict(samples=0), "samples"),
])
def test_bad_sampling_settings_are_refused(random_run, kwargs, message):
    with pytest.raises(CharModelError, match=message):
        generate(Engine.load(random_run), "Alice", **kwargs)
