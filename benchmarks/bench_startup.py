"""Start-up: `import` + build a BERT-base-shaped model + first prediction, in fresh processes.

Each peer runs in its own new Python process (so nothing is cached in
memory; files stay in the OS page cache after the first run, which is why
the first round is discarded as a warm-up) and reports, from its own
clock started before any import:

* import  - importing the library (and its framework)
* build   - building the BERT-base encoder (random weights, no checkpoint)
* predict - the first prediction on a 1 x 32 batch (tracing included)

Peers: kerasnlp4su (`import kerasnlp4su` + `build_transformer_model`),
kerasnlp4su with the frozen graph (`kerasnlp4su.inference.freeze`),
bert4keras 0.11.5 (tf-keras, `TF_KERAS=1 TF_USE_LEGACY_KERAS=1`) and KerasHub
(`keras_hub.models.BertBackbone`) when installed.

    python benchmarks/bench_startup.py                # 1 warm-up + 3 rounds, ~3 min on 2 cores
    python benchmarks/bench_startup.py --warmup 0 --rounds 1 --peers kerasnlp4su
    python -X importtime -c "import kerasnlp4su" 2> importtime.txt   # where import time goes

Prints a markdown table of medians (seconds).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# BERT-base: 12 layers, hidden 768, 12 heads, intermediate 3072, Chinese vocab 21128.
BASE = dict(vocab_size=21128, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
            intermediate_size=3072, max_position=512)

_CLOCK = """
import json, os, sys, time
start = time.perf_counter()
marks = {}
"""
_REPORT = """
import numpy as np
ids = np.random.default_rng(0).integers(1, 100, size=(1, 32)).astype("int32")
t1 = time.perf_counter()
out = predict(ids)
marks["predict"] = time.perf_counter() - t1
marks["total"] = time.perf_counter() - start
print("RESULT " + json.dumps(marks))
"""
PEERS = {
    "kerasnlp4su": """
import kerasnlp4su
marks["import"] = time.perf_counter() - start
t0 = time.perf_counter()
model = kerasnlp4su.build_transformer_model(model="bert", **BASE)
marks["build"] = time.perf_counter() - t0
predict = lambda ids: model.predict_on_batch([ids, np.zeros_like(ids)])
""",
    "kerasnlp4su frozen": """
import kerasnlp4su
from kerasnlp4su.inference import freeze
marks["import"] = time.perf_counter() - start
t0 = time.perf_counter()
model = kerasnlp4su.build_transformer_model(model="bert", **BASE)
marks["build"] = time.perf_counter() - t0
predict = lambda ids: freeze(model)([ids, np.zeros_like(ids)])
""",
    "bert4keras 0.11.5": """
from bert4keras.models import build_transformer_model
marks["import"] = time.perf_counter() - start
t0 = time.perf_counter()
cfg = dict(BASE); cfg["max_position_embeddings"] = cfg.pop("max_position")
cfg.update(hidden_act="gelu", type_vocab_size=2, hidden_dropout_prob=0.1,
           attention_probs_dropout_prob=0.1)
import tempfile
path = os.path.join(tempfile.mkdtemp(), "bert_config.json")
json.dump(cfg, open(path, "w"))
model = build_transformer_model(path, None)
marks["build"] = time.perf_counter() - t0
predict = lambda ids: model.predict_on_batch([ids, np.zeros_like(ids)])
""",
    "KerasHub": """
import keras_hub
marks["import"] = time.perf_counter() - start
t0 = time.perf_counter()
model = keras_hub.models.BertBackbone(
    vocabulary_size=BASE["vocab_size"], num_layers=12, num_heads=12, hidden_dim=768,
    intermediate_dim=3072, max_sequence_length=512)
marks["build"] = time.perf_counter() - t0
predict = lambda ids: model.predict_on_batch({"token_ids": ids, "segment_ids": np.zeros_like(ids),
                                               "padding_mask": ids != 0})
""",
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first (page cache)")
    parser.add_argument("--peers", default=",".join(PEERS))
    return parser.parse_args(argv)


def available(peer):
    module = {"bert4keras 0.11.5": "bert4keras", "KerasHub": "keras_hub"}.get(peer)
    if module is None:
        return True
    import importlib.util

    return importlib.util.find_spec(module) is not None


def run_once(peer):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
    if peer.startswith("bert4keras"):
        env.update(TF_KERAS="1", TF_USE_LEGACY_KERAS="1")
    code = _CLOCK + f"BASE = {BASE!r}\n" + PEERS[peer] + _REPORT
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT,
                          capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"{peer} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")


def main(argv=None):
    args = parse_args(argv)
    peers = [p for p in args.peers.split(",") if p]
    unknown = [p for p in peers if p not in PEERS]
    if unknown:
        raise SystemExit(f"unknown peers {unknown}; known: {list(PEERS)}")
    peers = [p for p in peers if available(p) or print(f"skipping {p}: not installed",
                                                       file=sys.stderr)]
    results = {p: [] for p in peers}
    for round_ in range(args.warmup + args.rounds):
        for peer in peers:
            marks = run_once(peer)
            if round_ >= args.warmup:
                results[peer].append(marks)
            print(f"round {round_} {peer}: " + ", ".join(f"{k} {v:.2f}s" for k, v in marks.items()),
                  file=sys.stderr)
    print("\n| peer | import s | build s | first predict s | total s |")
    print("|---|---|---|---|---|")
    for peer, runs in results.items():
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(f"| {peer} | {med['import']:.2f} | {med['build']:.2f} | {med['predict']:.2f} | "
              f"{med['total']:.2f} |")


if __name__ == "__main__":
    main()
