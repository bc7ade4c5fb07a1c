"""Reading (and writing) a BERT-base-sized TF1 checkpoint: kerasnlp4su's reader vs TensorFlow's.

Writes random weights under BERT-base's official names and shapes (vocab 21128, 12 layers,
hidden 768: ~102M parameters, ~410 MB of float32, plus `global_step`) into a temporary
directory, then times reading every variable into NumPy:

* `kerasnlp4su`: `TF1CheckpointReader(prefix)` and `.get(name)` for each weight, CRC32C of each
  tensor verified (what `build_transformer_model` does);
* the same with checksums off (`BundleReader.read(name, verify=False)`), to show their cost;
* TensorFlow: `tf.train.load_checkpoint(prefix)` and `.get_tensor(name)` for each variable
  (it verifies the same checksums).

Each repeat runs the readers in alternating order, from the page cache (one untimed warm-up
read first), and checks that both return identical bytes. Also timed: writing the checkpoint
(`write_tf1_checkpoint` vs TensorFlow's `SaveV2` op) and, in fresh processes, the import each
reader needs. Prints a Markdown section for `benchmarks/results.md`.

    python benchmarks/bench_checkpoint_read.py [--repeats 5]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402

from kerasnlp4su.checkpoints.readers import TF1CheckpointReader  # noqa: E402
from kerasnlp4su.checkpoints.tf_bundle import BundleReader  # noqa: E402
from kerasnlp4su.checkpoints.writer import write_tf1_checkpoint  # noqa: E402


def bert_base_tensors(vocab=21128, layers=12, hidden=768, intermediate=3072, seed=0):
    """Random float32 weights under BERT-base's official TF1 names and shapes."""
    rng = np.random.default_rng(seed)
    shapes = {"bert/embeddings/word_embeddings": (vocab, hidden),
              "bert/embeddings/position_embeddings": (512, hidden),
              "bert/embeddings/token_type_embeddings": (2, hidden)}

    def dense(name, n_in, n_out):
        shapes[f"{name}/kernel"], shapes[f"{name}/bias"] = (n_in, n_out), (n_out,)

    def norm(name):
        shapes[f"{name}/gamma"] = shapes[f"{name}/beta"] = (hidden,)

    norm("bert/embeddings/LayerNorm")
    for i in range(layers):
        layer = f"bert/encoder/layer_{i}"
        for part in ("query", "key", "value"):
            dense(f"{layer}/attention/self/{part}", hidden, hidden)
        dense(f"{layer}/attention/output/dense", hidden, hidden)
        norm(f"{layer}/attention/output/LayerNorm")
        dense(f"{layer}/intermediate/dense", hidden, intermediate)
        dense(f"{layer}/output/dense", intermediate, hidden)
        norm(f"{layer}/output/LayerNorm")
    dense("bert/pooler/dense", hidden, hidden)
    dense("cls/predictions/transform/dense", hidden, hidden)
    norm("cls/predictions/transform/LayerNorm")
    shapes["cls/predictions/output_bias"] = (vocab,)
    dense("cls/seq_relationship/output_weights", 2, hidden)
    tensors = {name: rng.standard_normal(shape, dtype=np.float32) for name, shape in shapes.items()}
    tensors["global_step"] = np.array(1000000, "int64")
    return tensors


def read_ours(prefix):
    reader = TF1CheckpointReader(prefix)
    return {name: reader.get(name) for name in reader.names()}


def read_ours_unverified(prefix):
    bundle = BundleReader(prefix)
    return {name: bundle.read(name, verify=False) for name in bundle.names()}


def read_tf(prefix):
    import tensorflow as tf

    reader = tf.train.load_checkpoint(prefix)
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def write_tf(prefix, tensors):
    import tensorflow as tf

    names = sorted(tensors)
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(tensors[n]) for n in names])


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def import_seconds(statement, repeats=3):
    """Best wall time of a fresh interpreter running `statement` (minus a bare interpreter's)."""
    def run(code):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ),
                       cwd=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
        return time.perf_counter() - start
    bare = min(run("pass") for _ in range(repeats))
    return min(run(statement) for _ in range(repeats)) - bare


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import tensorflow as tf  # imported before any timing: its import is timed separately

    tensors = bert_base_tensors()
    params = sum(a.size for a in tensors.values())
    readers = {"kerasnlp4su (checksums verified)": read_ours,
               "kerasnlp4su (checksums off)": read_ours_unverified,
               f"TensorFlow {tf.__version__} `tf.train.load_checkpoint`": read_tf}
    with tempfile.TemporaryDirectory() as directory:
        writes = {"kerasnlp4su `write_tf1_checkpoint`": [], "TensorFlow `SaveV2`": []}
        for _ in range(max(1, args.repeats // 2)):
            writes["kerasnlp4su `write_tf1_checkpoint`"].append(
                timed(write_tf1_checkpoint, os.path.join(directory, "ours.ckpt"), tensors)[0])
            writes["TensorFlow `SaveV2`"].append(
                timed(write_tf, os.path.join(directory, "tf.ckpt"), tensors)[0])
        prefix = os.path.join(directory, "tf.ckpt")
        size = sum(os.path.getsize(os.path.join(directory, f)) for f in os.listdir(directory)
                   if f.startswith("tf.ckpt"))
        reference = read_tf(prefix)  # warm-up: the files are in the page cache from here on
        times = {name: [] for name in readers}
        for repeat in range(args.repeats):
            order = list(readers) if repeat % 2 == 0 else list(reversed(readers))
            for name in order:
                seconds, result = timed(readers[name], prefix)
                times[name].append(seconds)
                weights = {k: v for k, v in reference.items() if k != "global_step"}
                assert all(result[k].tobytes() == v.tobytes() for k, v in weights.items()), name
    # What each reader itself needs (the `kerasnlp4su` package also imports Keras and a backend).
    imports = {"kerasnlp4su": import_seconds("import numpy, ml_dtypes, google_crc32c"),
               "TensorFlow": import_seconds("import tensorflow")}

    load = os.getloadavg()
    print(f"## Reading a BERT-base-sized TF1 checkpoint without TensorFlow "
          f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})\n")
    print(f"- {len(tensors)} variables, {params / 1e6:.1f}M parameters, {size / 2**20:.0f} MiB "
          f"on disk; {os.cpu_count()} CPUs, load average {load[0]:.1f} at the end; "
          f"best / median of {args.repeats} reads from the page cache, readers in alternating "
          "order; every read returned the same bytes as TensorFlow's\n")
    print("| reading every variable into NumPy | best s | median s | GB/s (best) |")
    print("|---|---:|---:|---:|")
    for name, values in times.items():
        print(f"| {name} | {min(values):.3f} | {statistics.median(values):.3f} | "
              f"{size / min(values) / 1e9:.2f} |")
    print("\n| writing the checkpoint | best s | median s |")
    print("|---|---:|---:|")
    for name, values in writes.items():
        print(f"| {name} | {min(values):.3f} | {statistics.median(values):.3f} |")
    print(f"\nImporting what each reader needs, fresh process, best of 3: kerasnlp4su's "
          f"(numpy, ml_dtypes, google_crc32c) {imports['kerasnlp4su']:.2f} s, "
          f"TensorFlow {imports['TensorFlow']:.2f} s.")


if __name__ == "__main__":
    main()
