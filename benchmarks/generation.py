"""Generation speed, batch 1: the NumPy engine against the post's method and a bare NumPy floor.

    python benchmarks/generation.py [--run weights/alice] [--chars 2000] [--repeats 5] [--post-chars 30]
                                    [--threads 1,2] [--skip-post]

All three use the same weights, in one process:
  * engine  charmodel.engine.sampling.generate (stateful, one step per character);
  * floor   the least a batch-1 NumPy sampler can do: input projection folded into the embedding
            table, contiguous weights, one matmul per layer, cumulative-sum sampling;
  * post    the post's method: Keras model.predict on the last 100 characters for every new one.
Prints medians of --repeats runs, in characters per second, and the ratios. With --threads, the
engine and the floor are measured at each BLAS thread count (engine.set_threads, what `generate
--threads N` sets), the two alternating run by run so both see the same machine.
"""

import argparse
import statistics
import time

import numpy as np


from charmodel.run import folder as runfolder
from charmodel.run.handle import Run
from charmodel.engine import Engine
from charmodel.engine.sampling import generate


def floor_sampler(weights, n_chars, first_id, seed):
    """Bare loop for 2 layers; written for speed, not for reuse."""
    sig = lambda x: 1.0 / (1.0 + np.exp(-x))
    table0 = np.ascontiguousarray(weights["embedding"] @ weights["lstm0_kernel"] + weights["lstm0_bias"])
    R0 = np.ascontiguousarray(weights["lstm0_recurrent"])
    W1 = np.ascontiguousarray(np.vstack([weights["lstm1_kernel"], weights["lstm1_recurrent"]]))
    b1, Wd, bd = weights["lstm1_bias"], np.ascontiguousarray(weights["dense_kernel"]), weights["dense_bias"]
    U = R0.shape[0]
    h0, c0, h1, c1 = (np.zeros(U, np.float32) for _ in range(4))
    rng = np.random.default_rng(seed)
    x, out = first_id, []
    for _ in range(n_chars):
        z = table0[x] + h0 @ R0
        c0 = sig(z[U:2 * U]) * c0 + sig(z[:U]) * np.tanh(z[2 * U:3 * U])
        h0 = sig(z[3 * U:]) * np.tanh(c0)
        z = np.concatenate([h0, h1]) @ W1 + b1
        c1 = sig(z[U:2 * U]) * c1 + sig(z[:U]) * np.tanh(z[2 * U:3 * U])
        h1 = sig(z[3 * U:]) * np.tanh(c1)
        logits = h1 @ Wd + bd
        p = np.exp((logits - logits.max()) / 0.8)
        cdf = np.cumsum(p)
        x = int(np.searchsorted(cdf, rng.random() * cdf[-1]))
        out.append(x)
    return out


def post_method(model, vocab, prime_ids, n_chars, window=100):
    """The post's loop: predict on the last `window` characters, for every new character."""
    ids = list(prime_ids)
    for _ in range(n_chars):
        x = np.array(ids[-window:], dtype=np.int32)[None]
        probs = model.predict(x, verbose=0)[0, -1]
        ids.append(int(np.argmax(probs)))
    return ids


def median_rate(fn, chars, repeats):
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        rates.append(chars / (time.perf_counter() - t0))
    return statistics.median(rates)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--run", default="weights/alice")
    p.add_argument("--chars", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--post-chars", type=int, default=30)
    p.add_argument("--threads", default=None, help="comma-separated BLAS thread counts, e.g. 1,2")
    p.add_argument("--skip-post", action="store_true")
    args = p.parse_args()

    config = runfolder.read_config(args.run)
    checkpoint = runfolder.default_checkpoint(args.run)
    weights = runfolder.load_weights_npz(runfolder.checkpoint_path(args.run, checkpoint))
    engine = Engine.load(args.run, checkpoint)
    arch = config["architecture"]
    print(f"run {args.run} ({checkpoint}): {arch['layers']}x{arch['units']}, vocab {len(engine.vocab)}")
    prime = Run.open(args.run).split()[1][:100]
    first = int(engine.vocab.encode(prime[-1])[0])

    if args.threads:
        from charmodel.engine import set_threads

        for n in [int(x) for x in args.threads.split(",")]:
            set_threads(n)
            rates = {"engine": [], "floor": []}
            for _ in range(args.repeats):
                for name, fn in (("engine", lambda: generate(engine, prime, args.chars, 0.8, seed=1)),
                                 ("floor", lambda: floor_sampler(weights, args.chars, first, 1))):
                    rates[name].append(median_rate(fn, args.chars, 1))
            e, f = (statistics.median(rates[k]) for k in ("engine", "floor"))
            print(f"THREADS {n}: engine {e:.0f} chars/s ({', '.join(f'{r:.0f}' for r in rates['engine'])}), floor "
                  f"{f:.0f} ({', '.join(f'{r:.0f}' for r in rates['floor'])}); engine time / floor time {f / e:.2f} "
                  "(target <= 1.2)", flush=True)
        set_threads(1)
        if args.skip_post:
            return
    eng = median_rate(lambda: generate(engine, prime, args.chars, 0.8, seed=1), args.chars, args.repeats)
    flo = median_rate(lambda: floor_sampler(weights, args.chars, first, 1), args.chars, args.repeats) \
        if arch["layers"] == 2 else float("nan")

    import keras  # only the post's method needs it

    from charmodel.training import model as kmodel

    model = kmodel.build(len(engine.vocab), arch["layers"], arch["units"], arch["dropout"], arch["embedding"])
    kmodel.import_weights(model, weights)
    prime_ids = engine.vocab.encode(prime)
    post_method(model, engine.vocab, prime_ids, 3)  # warm-up: first predict traces the graph
    post = median_rate(lambda: post_method(model, engine.vocab, prime_ids, args.post_chars), args.post_chars,
                       max(3, args.repeats // 2))

    print(f"{'method':<8}{'chars/s':>10}")
    print(f"{'engine':<8}{eng:>10.0f}")
    print(f"{'floor':<8}{flo:>10.0f}")
    print(f"{'post':<8}{post:>10.1f}")
    print(f"engine time per char / floor time per char: {flo / eng:.2f} (target <= 1.2)")
    print(f"engine speed / post speed: {eng / post:.0f}x (target >= 100x)")


if __name__ == "__main__":
    main()
