"""A character n-gram language model: the baseline a character LSTM has to beat.

Interpolated Witten-Bell smoothing. For a history h (the n-1 characters before c, or fewer at the
start of a text) and h' the same history without its first character:

    P(c | h) = (C(h c) + T(h) P(c | h')) / (C(h) + T(h))     when h was seen in training,
    P(c | h) = P(c | h')                                      when it was not,
    P(c | "") interpolates the same way with the uniform 1 / (V + 1),

where C counts in the training text and T(h) is how many distinct characters followed h there.
The uniform floor has one slot beyond the training vocabulary's V characters, so a character
never seen in training still costs a finite number of bits. Each step's distribution over the
vocabulary and that slot sums to 1.

The model is static: it counts the training text once and never counts what it scores.
Counting is vectorised: a context of length j gets a dense integer id built from the id of its
length j-1 suffix and one more character (np.unique), so codes never overflow whatever the order.
"""

from dataclasses import dataclass

import numpy as np

LN2 = np.log(2.0)


@dataclass
class Level:
    """The counts for contexts of one length j (an n-gram model of order n has levels 0..n-1)."""
    contexts: np.ndarray  # (H,) sorted keys: (id of the context's length j-1 suffix) * B + first char
    events: np.ndarray  # (E,) sorted keys: context id * B + next character
    event_counts: np.ndarray  # (E,) C(h c)
    totals: np.ndarray  # (H,) C(h): how often the context was followed by any character
    types: np.ndarray  # (H,) T(h): how many distinct characters followed it


def _find(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Index of each key in sorted_keys, or -1 where it is absent."""
    if not len(sorted_keys):
        return np.full(len(keys), -1)
    at = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return np.where(sorted_keys[at] == keys, at, -1)


class NGram:
    """An interpolated Witten-Bell character n-gram model, counted once on a training text."""

    def __init__(self, chars: list[str], order: int, levels: list[Level]):
        self.chars = chars  # the training vocabulary, sorted; id len(chars) is every unseen character
        self.order = order  # n: a character is predicted from the n-1 before it
        self.levels = levels  # levels[j]: contexts of j characters
        self._index = {c: i for i, c in enumerate(chars)}

    @property
    def base(self) -> int:
        return len(self.chars) + 1  # the vocabulary and the unseen slot

    def encode(self, text: str) -> np.ndarray:
        unseen = len(self.chars)
        return np.array([self._index.get(c, unseen) for c in text], dtype=np.int64)

    @classmethod
    def fit(cls, train_text: str, order: int) -> "NGram":
        """Count every context of 0..order-1 characters in train_text and what followed it."""
        if order < 1:
            raise ValueError(f"an n-gram model needs order >= 1, not {order}")
        model = cls(sorted(set(train_text)), order, [])
        ids = model.encode(train_text)  # (N,)
        B, N = model.base, len(ids)
        ctx = np.zeros(N, dtype=np.int64)  # ctx[k]: id of the j characters before position j + k (j = 0: one context)
        contexts = np.zeros(1, dtype=np.int64)
        for j in range(order):
            if j:  # grow each context one character to the left; positions with too little history drop out
                keys = ctx[1:] * B + ids[: N - j]  # the suffix context before i, and the character before that
                contexts, ctx = np.unique(keys, return_inverse=True)
            targets = ids[j:]
            events, event_counts = np.unique(ctx * B + targets, return_counts=True)
            model.levels.append(Level(contexts=contexts, events=events, event_counts=event_counts,
                                      totals=np.bincount(ctx, minlength=len(contexts)),
                                      types=np.bincount(events // B, minlength=len(contexts))))
        return model

    def _contexts(self, ids: np.ndarray, positions: np.ndarray) -> list[np.ndarray]:
        """For each level j, the context id before each position in `ids` (-1: unseen or too short)."""
        ctx = np.zeros(len(positions), dtype=np.int64)
        out = [ctx]
        for level in self.levels[1:]:
            j = len(out)
            ok = (ctx >= 0) & (positions - j >= 0)
            keys = ctx * self.base + ids[np.maximum(positions - j, 0)]
            ctx = np.where(ok, _find(level.contexts, keys), -1)
            out.append(ctx)
        return out

    def _probs(self, contexts: list[np.ndarray], targets: np.ndarray) -> np.ndarray:
        """P(target | context) for each row, interpolated from the uniform floor up to the longest context."""
        p = np.full(len(targets), 1.0 / self.base)
        for level, ctx in zip(self.levels, contexts):
            h = np.maximum(ctx, 0)
            seen = (ctx >= 0) & (level.totals[h] > 0)
            at = _find(level.events, h * self.base + targets)
            count = np.where(at >= 0, level.event_counts[np.maximum(at, 0)], 0)
            total, types = level.totals[h], level.types[h]
            p = np.where(seen, (count + types * p) / np.maximum(total + types, 1), p)
        return p

    def bits(self, text: str, context: str = "") -> np.ndarray:
        """Bits each character of `text` costs, read left to right after `context`: shape (T,)."""
        context = context[-(self.order - 1):] if self.order > 1 else ""  # all the model can use
        ids = self.encode(context + text)
        positions = np.arange(len(context), len(ids))
        return -np.log(self._probs(self._contexts(ids, positions), ids[positions])) / LN2

    def bpc(self, text: str, context: str = "") -> float:
        """Mean bits per character of `text` after `context`."""
        return float(self.bits(text, context).mean())

    def next_probs(self, context: str = "") -> np.ndarray:
        """P(next character | context), shape (V + 1,): the vocabulary in order, then the unseen slot."""
        context = context[-(self.order - 1):] if self.order > 1 else ""  # all the model can use
        ids = np.append(self.encode(context), 0)  # a placeholder where the candidates go
        targets = np.arange(self.base)
        positions = np.full(self.base, len(context))
        return self._probs(self._contexts(ids, positions), targets)
