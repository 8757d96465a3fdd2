"""The engine: the model's maths in NumPy, with no TensorFlow. Read in dependency order:

    threads      BLAS threads for the engine's loops (one per process unless asked)
    lstm         Engine: the LSTM step written once, run stateful or over windows; Carry; Clamp
    inspection   whole texts: every recorded value, next-character guesses, bits per character
    sampling     generate text, stateful and batched
    ngram        NGram: a character n-gram model (interpolated Witten-Bell), a baseline for scoring
    scoring      evaluate a run, and the compressors' and n-grams' bits per character beside it
"""

from charmodel.engine.threads import THREADS_ENV, blas_threads, cores, parse_threads, pin_blas, set_threads
from charmodel.engine.lstm import (BLOCK, GATE_ORDER, KINDS, Carry, Clamp, Engine, check_window, clamps, gate_columns,
                                   layer_index, layer_number, lstm_step, weight_names)
from charmodel.engine.inspection import LN2, Inspection, bits_per_char, inspect, iter_inspect, log_softmax, softmax
from charmodel.engine.sampling import SEED, TEMPERATURE, generate

__all__ = ["THREADS_ENV", "blas_threads", "cores", "parse_threads", "pin_blas", "set_threads", "BLOCK", "GATE_ORDER",
           "KINDS", "Carry", "Clamp", "Engine", "clamps", "check_window", "gate_columns", "layer_index", "layer_number",
           "lstm_step", "weight_names", "LN2", "Inspection", "bits_per_char", "inspect", "iter_inspect", "log_softmax",
           "softmax", "SEED", "TEMPERATURE", "generate"]
