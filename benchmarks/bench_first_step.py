"""Time of the first training step: a plain `keras.Model` against `TransformerModel`.

On TensorFlow without a distribution strategy, Keras 3 creates the optimizer's
and the compiled metrics' variables inside the first traced train step, and
`tf.function` traces a function that creates variables a second time.
`TransformerModel` (what `build_transformer_model` returns; wrap a head with it
instead of `keras.Model`) builds that state from the arrays' shapes first, so the
step is traced once. Each case runs in a fresh interpreter:

    python benchmarks/bench_first_step.py [--repeats 3] [--optimizer adamw]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TINY = os.path.join(HERE, "..", "checkpoints", "tiny_bert")

CHILD = """
import json, os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras, numpy as np
from kerasnlp4su.models import TransformerModel, build_transformer_model
from kerasnlp4su.optimizers import Tiger
tiny, wrapper, optimizer = sys.argv[1:4]
bert = build_transformer_model(f"{tiny}/bert_config.json", f"{tiny}/bert_model.ckpt", with_pool=True)
probs = keras.layers.Dense(2, activation="softmax")(bert.output)
model = (TransformerModel if wrapper == "TransformerModel" else keras.Model)(bert.inputs, probs)
opt = {"adamw": lambda: keras.optimizers.AdamW(1e-3), "tiger": lambda: Tiger(1e-3),
       "sgd": lambda: keras.optimizers.SGD(0.1)}[optimizer]()
model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
x = [np.ones((16, 32), "int32"), np.zeros((16, 32), "int32")]
y = np.zeros((16,), "int32")
start = time.perf_counter()
model.train_on_batch(x, y)
first = time.perf_counter() - start
start = time.perf_counter()
model.train_on_batch(x, y)
print(json.dumps({"first": first, "second": time.perf_counter() - start}))
"""


def run(wrapper, optimizer):
    out = subprocess.run([sys.executable, "-c", CHILD, TINY, wrapper, optimizer], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--optimizer", default="adamw", choices=["adamw", "tiger", "sgd"])
    args = parser.parse_args(argv)
    times = {w: [] for w in ("keras.Model", "TransformerModel")}
    for _ in range(args.repeats):  # interleaved, so drift in machine load hits both alike
        for wrapper in times:
            times[wrapper].append(run(wrapper, args.optimizer)["first"])
    print(f"| first `train_on_batch`, tiny BERT + {args.optimizer} + accuracy | min | median | max |")
    print("| --- | ---: | ---: | ---: |")
    for wrapper, values in times.items():
        print(f"| {wrapper} | {min(values):.2f} s | {statistics.median(values):.2f} s | {max(values):.2f} s |")
    ratio = statistics.median(times["keras.Model"]) / statistics.median(times["TransformerModel"])
    print(f"\nmedian ratio: {ratio:.2f}x")


if __name__ == "__main__":
    main()
