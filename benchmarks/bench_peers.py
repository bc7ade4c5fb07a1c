"""kerasnlp4su against its peers on CPU: one command, one table, one run.

A BERT-base-shaped encoder (vocab 21128, 12 layers, hidden 768, 12 heads,
intermediate 3072, 512 positions), float32 unless a column says otherwise,
is timed in each library, every library in its own subprocess with the same
thread count:

* forward tokens/s at batch 8 x 128 and batch 1 x 512;
* training-step tokens/s (forward + backward + AdamW, MSE on the sequence
  output) at batch 8 x 128;
* official TF1 checkpoint loading (a random BERT-base-sized checkpoint with
  the official variable names is written once into the cache directory);
* tokenizer sentences/s, ``kerasnlp4su.tokenizers.Tokenizer`` against
  bert4keras's pure-Python tokenizer on a 21128-token vocabulary, with the
  ids asserted identical: as id lists (``encode_batch`` vs bert4keras's
  ``encode`` loop) and as padded model inputs (``encode_batch(padded=True)``
  vs the loop plus bert4keras's ``sequence_padding``, arrays asserted equal);
* the machine's fp32 GEMM peak (best of numpy / TF / torch square matmuls),
  and for every forward/training cell the fraction of that peak it reaches
  (forward FLOPs = 2 x matmul params x tokens + 4 n^2 H per layer and
  sequence; training = 3 x forward).

Peers: kerasnlp4su (Keras 3 / TF graph, XLA, mixed_bfloat16, and the same
model on the JAX and PyTorch backends), KerasHub
``BertBackbone`` (same Keras / TF), bert4keras 0.11.5 on tf-keras (run with
``TF_KERAS=1 TF_USE_LEGACY_KERAS=1``), HF transformers ``BertModel``
(PyTorch). A peer that is not installed or fails shows its error in the
table instead of a number.

    python benchmarks/bench_peers.py            # full run, ~10-15 min on 2 cores
    python benchmarks/bench_peers.py --quick    # 2-layer smoke run, ~2-3 min
    python benchmarks/bench_peers.py --peers kerasnlp4su,hf_torch --threads 2

Peers need: ``pip install keras-hub tf-keras bert4keras==0.11.5`` (the last
two with ``--no-deps`` if pip insists on other keras/tensorflow versions),
plus transformers and torch. Results go to stdout and benchmarks/results.md.
"""

import argparse
import datetime
import hashlib
import json
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

FULL = dict(vocab_size=21128, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
            intermediate_size=3072, max_position_embeddings=512)
SHAPES = {"fwd_8x128": (8, 128), "fwd_1x512": (1, 512)}
TRAIN_SHAPE = (8, 128)

# column key -> (title, worker kind)
PEERS = {
    "kerasnlp4su": "kerasnlp4su",
    "kerasnlp4su_xla": "kerasnlp4su XLA",
    "kerasnlp4su_bf16": "kerasnlp4su bf16",
    "kerasnlp4su_frozen": "kerasnlp4su freeze() (inference)",
    "kerasnlp4su_jax": "kerasnlp4su on JAX",
    "kerasnlp4su_torch": "kerasnlp4su on torch",
    "kerashub": "KerasHub",
    "bert4keras": "bert4keras 0.11.5",
    "hf_torch": "HF transformers (torch)",
}


# ============================================================== helpers
def bert_config(quick):
    config = dict(FULL, hidden_act="gelu", hidden_dropout_prob=0.1,
                  attention_probs_dropout_prob=0.1, initializer_range=0.02, type_vocab_size=2)
    if quick:
        config["num_hidden_layers"] = 2
    return config


def forward_flops(config, batch, length):
    """FLOPs of one encoder forward (matmuls only: dense layers + attention)."""
    h, i, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    matmul_params = layers * (4 * h * h + 2 * h * i)
    return 2 * matmul_params * batch * length + layers * batch * 4 * length * length * h


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def load_average():
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:
        return "?"


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    keep = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
                    return " ".join(f for f in keep if f in flags)
    except OSError:
        pass
    return ""


def timed(fn, warmup, reps):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return {"best": times[0], "median": times[len(times) // 2], "times": times}


def setup_threads(threads):
    """Thread settings every worker applies before importing a framework."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "TF_NUM_INTRAOP_THREADS", "RAYON_NUM_THREADS"):
        os.environ[var] = str(threads)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def tf_threads(threads):
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def random_batch(vocab, batch, length, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    ids = rng.integers(1, vocab, size=(batch, length)).astype("int32")  # no padding
    segments = np.zeros((batch, length), "int32")
    segments[:, length // 2:] = 1
    return ids, segments


# ============================================================ cache files
def ensure_files(cache, config, quick):
    """Config, official-format checkpoint and a 21128-token vocab in `cache`."""
    tag = hashlib.md5(json.dumps(config, sort_keys=True).encode()).hexdigest()[:8]
    directory = os.path.join(cache, f"bert_{config['num_hidden_layers']}l_{tag}")
    config_path = os.path.join(directory, "bert_config.json")
    ckpt = os.path.join(directory, "bert_model.ckpt")
    vocab_path = os.path.join(directory, "vocab.txt")
    if not os.path.exists(ckpt + ".index"):
        os.makedirs(directory, exist_ok=True)
        print(f"# writing a random official-format checkpoint to {directory} (once)", flush=True)
        code = ("import json, sys, numpy as np\n"
                f"sys.path[:0] = [{ROOT!r}, {os.path.join(ROOT, 'checkpoints')!r}]\n"
                "from make_tiny_checkpoints import bert_tensors\n"
                "from kerasnlp4su.checkpoints.writer import write_tf1_checkpoint\n"
                f"config = json.loads({json.dumps(json.dumps(config))})\n"
                f"write_tf1_checkpoint({ckpt!r}, bert_tensors(config, np.random.default_rng(0)))\n")
        subprocess.run([sys.executable, "-c", code], check=True,
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    with open(config_path, "w") as f:
        json.dump(config, f, indent=2)
    if not os.path.exists(vocab_path):
        with open(vocab_path, "w", encoding="utf-8") as f:
            f.write("\n".join(build_vocab(config["vocab_size"])) + "\n")
    return {"config": config_path, "checkpoint": ckpt, "vocab": vocab_path}


def build_vocab(size):
    """The tiny vocab padded with CJK characters and [unusedN] to `size` tokens."""
    with open(os.path.join(ROOT, "checkpoints", "tiny_bert", "vocab.txt"), encoding="utf-8") as f:
        tokens = [line.rstrip("\n") for line in f if line.strip()]
    seen = set(tokens)
    extra_unused = 100
    code = 0x4E00
    while len(tokens) < size - extra_unused and code <= 0x9FFF:
        ch = chr(code)
        if ch not in seen:
            tokens.append(ch)
            seen.add(ch)
        code += 1
    n = 11
    while len(tokens) < size:
        token = f"[unused{n}]"
        if token not in seen:
            tokens.append(token)
            seen.add(token)
        n += 1
    return tokens[:size]


def make_sentences(count, seed=0):
    """Mostly-Chinese sentences with English words, digits, case and accents."""
    import random

    sys.path.insert(0, os.path.join(ROOT, "checkpoints"))
    from make_tiny_checkpoints import CJK, PIECES, WORDS

    rng = random.Random(seed)
    common = list(dict.fromkeys(CJK))
    rare = [chr(c) for c in range(0x4E00, 0x9FA5)]
    punct = list("，。！？、；：“”（）《》") + list(",.!?;:()\"'-")
    words = WORDS + [w + p for w in WORDS[:40] for p in PIECES[:4]] + [
        "Keras", "BERT", "TensorFlow", "café", "naïve", "Zürich", "GPU", "NLP2024"]
    sentences = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(10, 90)):
            r = rng.random()
            if r < 0.70:
                parts.append(rng.choice(common))
            elif r < 0.78:
                parts.append(rng.choice(rare))
            elif r < 0.88:
                parts.append(" " + rng.choice(words) + " ")
            elif r < 0.93:
                parts.append(str(rng.randint(0, 99999)))
            else:
                parts.append(rng.choice(punct))
        sentences.append("".join(parts).strip())
    return sentences


# ================================================================ workers
def worker_gemm(spec):
    """fp32 square-GEMM GFLOP/s: numpy, TF (oneDNN) and torch; best of reps."""
    import numpy as np

    n, reps, threads = spec["gemm_n"], spec["gemm_reps"], spec["threads"]
    flops = 2 * n ** 3
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype("float32")
    b = rng.standard_normal((n, n)).astype("float32")
    out = {}
    out["numpy"] = flops / timed(lambda: a @ b, 1, reps)["best"] / 1e9
    try:
        tf_threads(threads)
        import tensorflow as tf

        ta, tb = tf.constant(a), tf.constant(b)
        f = tf.function(lambda x, y: tf.matmul(x, y))
        out["tensorflow"] = flops / timed(lambda: f(ta, tb).numpy(), 1, reps)["best"] / 1e9
    except Exception as e:  # noqa: BLE001
        out["tensorflow_error"] = repr(e)
    try:
        import torch

        torch.set_num_threads(threads)
        pa, pb = torch.from_numpy(a), torch.from_numpy(b)
        out["torch"] = flops / timed(lambda: torch.mm(pa, pb), 1, reps)["best"] / 1e9
    except Exception as e:  # noqa: BLE001
        out["torch_error"] = repr(e)
    out["peak"] = max(v for k, v in out.items() if isinstance(v, float))
    return out


def _keras_model_bench(spec, build, inputs_for, jit_compile, result):
    """Forward and training rows of a Keras 3 / tf-keras model built by `build()`."""
    import numpy as np

    model = build()
    model.compile(optimizer=spec["_optimizer"](), loss="mse", jit_compile=jit_compile)
    for key, (batch, length) in SHAPES.items():
        x = inputs_for(batch, length)
        result[key] = timed(lambda x=x: model.predict_on_batch(x), spec["warmup"], spec["reps"])
    batch, length = TRAIN_SHAPE
    x = inputs_for(batch, length)
    y = np.random.default_rng(1).standard_normal(
        (batch, length, spec["config"]["hidden_size"])).astype("float32") * 0.1
    result["train_8x128"] = timed(lambda: model.train_on_batch(x, y), spec["warmup"],
                                  spec["train_reps"])
    return model


def worker_kerasnlp4su(spec, variant):
    tf_threads(spec["threads"])
    import keras

    if keras.backend.backend() == "torch":
        import torch

        torch.set_num_threads(spec["threads"])
    sys.path.insert(0, ROOT)
    from kerasnlp4su import build_transformer_model

    if variant == "bf16":
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    result = {}
    files = spec["files"]
    if variant == "graph":
        # Official checkpoint: build, then load (twice; the best load counts).
        t0 = time.perf_counter()
        builder = build_transformer_model(files["config"], None, return_keras_model=False)
        t1 = time.perf_counter()
        loads = []
        for _ in range(2):
            t2 = time.perf_counter()
            builder.load_weights_from_checkpoint(files["checkpoint"])
            loads.append(time.perf_counter() - t2)
        result["load"] = {"build": t1 - t0, "load": min(loads), "loads": loads}
        del builder
        keras.backend.clear_session()
    # Keras's AdamW, with its update compiled as one XLA program on TF (a
    # no-op on JAX and torch) and embedding gradients merged first.
    from kerasnlp4su.optimizers import extend_with_compiled_update

    fast_adamw = extend_with_compiled_update(keras.optimizers.AdamW)
    spec["_optimizer"] = lambda: fast_adamw(learning_rate=1e-5)
    vocab = spec["config"]["vocab_size"]

    def inputs_for(batch, length):
        return list(random_batch(vocab, batch, length))

    if variant == "frozen":
        # Inference only: kerasnlp4su.inference.freeze bakes the weights into
        # the graph (no training row: a frozen model has no variables).
        from kerasnlp4su.inference import freeze

        frozen = freeze(build_transformer_model(files["config"]))
        for key, (batch, length) in SHAPES.items():
            x = inputs_for(batch, length)
            result[key] = timed(lambda x=x: frozen(x), spec["warmup"], spec["reps"])
        result["backend"] = keras.backend.backend()
        return result
    jit = True if variant == "xla" else ("auto" if variant == "backend" else False)
    _keras_model_bench(spec, lambda: build_transformer_model(files["config"]), inputs_for,
                       jit, result)
    result["backend"] = keras.backend.backend()
    return result


def worker_kerashub(spec):
    tf_threads(spec["threads"])
    import keras
    import keras_hub

    c = spec["config"]

    def build():
        backbone = keras_hub.models.BertBackbone(
            vocabulary_size=c["vocab_size"], num_layers=c["num_hidden_layers"],
            num_heads=c["num_attention_heads"], hidden_dim=c["hidden_size"],
            intermediate_dim=c["intermediate_size"], dropout=c["hidden_dropout_prob"],
            max_sequence_length=c["max_position_embeddings"],
            num_segments=c["type_vocab_size"])
        return keras.Model(backbone.input, backbone.output["sequence_output"])

    def inputs_for(batch, length):
        ids, segments = random_batch(c["vocab_size"], batch, length)
        return {"token_ids": ids, "segment_ids": segments, "padding_mask": (ids != 0).astype("int32")}

    spec["_optimizer"] = lambda: keras.optimizers.AdamW(learning_rate=1e-5)
    result = {"load": {"error": "n/a: KerasHub has no official TF1 checkpoint loader "
                                "(only its own / HF presets)"}}
    _keras_model_bench(spec, build, inputs_for, False, result)
    result["version"] = keras_hub.__version__
    return result


def worker_bert4keras(spec):
    # Runs with TF_KERAS=1 TF_USE_LEGACY_KERAS=1 (set by the parent).
    tf_threads(spec["threads"])
    import tensorflow as tf
    from bert4keras.models import build_transformer_model

    files = spec["files"]
    result = {}
    t0 = time.perf_counter()
    builder = build_transformer_model(files["config"], None, return_keras_model=False)
    t1 = time.perf_counter()
    loads = []
    for _ in range(2):
        t2 = time.perf_counter()
        builder.load_weights_from_checkpoint(files["checkpoint"])
        loads.append(time.perf_counter() - t2)
    result["load"] = {"build": t1 - t0, "load": min(loads), "loads": loads}
    del builder
    tf.keras.backend.clear_session()

    def optimizer():
        adamw = getattr(tf.keras.optimizers, "AdamW", None)
        if adamw is None:
            adamw = tf.keras.optimizers.experimental.AdamW
        return adamw(learning_rate=1e-5)

    spec["_optimizer"] = optimizer
    vocab = spec["config"]["vocab_size"]
    _keras_model_bench(spec, lambda: build_transformer_model(files["config"]),
                       lambda b, n: list(random_batch(vocab, b, n)), False, result)
    import bert4keras

    result["version"] = bert4keras.__version__
    return result


def worker_hf_torch(spec):
    import torch
    import transformers
    from transformers import BertConfig, BertForPreTraining, BertModel

    torch.set_num_threads(spec["threads"])
    c = spec["config"]
    hf_config = BertConfig(
        vocab_size=c["vocab_size"], hidden_size=c["hidden_size"],
        num_hidden_layers=c["num_hidden_layers"], num_attention_heads=c["num_attention_heads"],
        intermediate_size=c["intermediate_size"], hidden_act=c["hidden_act"],
        hidden_dropout_prob=c["hidden_dropout_prob"],
        attention_probs_dropout_prob=c["attention_probs_dropout_prob"],
        max_position_embeddings=c["max_position_embeddings"],
        type_vocab_size=c["type_vocab_size"])
    result = {"version": transformers.__version__, "torch": torch.__version__}
    try:
        from transformers.models.bert.modeling_bert import load_tf_weights_in_bert
        import transformers.utils.logging as hf_logging

        hf_logging.set_verbosity_error()
        t0 = time.perf_counter()
        pretraining = BertForPreTraining(hf_config)
        t1 = time.perf_counter()
        loads = []
        for _ in range(2):
            t2 = time.perf_counter()
            load_tf_weights_in_bert(pretraining, hf_config, spec["files"]["checkpoint"])
            loads.append(time.perf_counter() - t2)
        result["load"] = {"build": t1 - t0, "load": min(loads), "loads": loads}
        del pretraining
    except Exception as e:  # noqa: BLE001
        result["load"] = {"error": f"{type(e).__name__}: {e}"[:200]}

    model = BertModel(hf_config, add_pooling_layer=False)

    def inputs_for(batch, length):
        ids, segments = random_batch(c["vocab_size"], batch, length)
        return dict(input_ids=torch.from_numpy(ids).long(),
                    token_type_ids=torch.from_numpy(segments).long(),
                    attention_mask=torch.ones(batch, length, dtype=torch.long))

    model.eval()
    for key, (batch, length) in SHAPES.items():
        x = inputs_for(batch, length)

        def forward(x=x):
            with torch.inference_mode():
                return model(**x).last_hidden_state

        result[key] = timed(forward, spec["warmup"], spec["reps"])
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    batch, length = TRAIN_SHAPE
    x = inputs_for(batch, length)
    y = torch.randn(batch, length, c["hidden_size"]) * 0.1

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(model(**x).last_hidden_state, y)
        loss.backward()
        optimizer.step()

    result["train_8x128"] = timed(step, spec["warmup"], spec["train_reps"])
    result["attn_implementation"] = getattr(model.config, "_attn_implementation", None)
    return result


def worker_tokenizer(spec):
    """kerasnlp4su Tokenizer vs bert4keras Tokenizer: identical ids, sentences/s."""
    import numpy as np

    sys.path.insert(0, ROOT)
    texts = make_sentences(spec["sentences"])
    vocab = spec["files"]["vocab"]
    maxlen = 128
    result = {"sentences": len(texts), "mean_chars": sum(map(len, texts)) / len(texts)}
    from kerasnlp4su.tokenizers import Tokenizer

    ours = Tokenizer(vocab, do_lower_case=True)
    result["engine"] = ours.engine
    # Warm up (lookup tables, word cache) on a different corpus of the same kind.
    ours.encode_batch(make_sentences(spec["sentences"], seed=1), maxlen=maxlen)
    batch = timed(lambda: ours.encode_batch(texts, maxlen=maxlen), 0, spec["reps"])
    padded = timed(lambda: ours.encode_batch(texts, maxlen=maxlen, padded=True), 0,
                   spec["reps"])
    result["kerasnlp4su_padded"] = len(texts) / padded["best"]
    ids_ours = ours.encode_batch(texts, maxlen=maxlen)
    loop = timed(lambda: [ours.encode(t, maxlen=maxlen) for t in texts], 0, 1)
    result["kerasnlp4su"] = len(texts) / batch["best"]
    result["kerasnlp4su_encode_loop"] = len(texts) / loop["best"]
    try:
        from bert4keras.tokenizers import Tokenizer as B4KTokenizer
    except Exception as e:  # noqa: BLE001
        result["bert4keras_error"] = f"{type(e).__name__}: {e}"[:200]
        return result
    from bert4keras.snippets import sequence_padding as b4k_padding

    theirs = B4KTokenizer(vocab, do_lower_case=True)
    their_loop = timed(lambda: [theirs.encode(t, maxlen=maxlen) for t in texts], 0, 2)
    ids_theirs = [theirs.encode(t, maxlen=maxlen) for t in texts]
    result["bert4keras"] = len(texts) / their_loop["best"]
    # Model-ready arrays the bert4keras way: the encode loop, then its
    # sequence_padding of the id and segment lists.
    their_pad = timed(lambda: (b4k_padding([a for a, _ in ids_theirs]),
                               b4k_padding([b for _, b in ids_theirs])), 0, 2)
    result["bert4keras_padded"] = len(texts) / (their_loop["best"] + their_pad["best"])
    padded_ours = ours.encode_batch(texts, maxlen=maxlen, padded=True)
    result["padded_identical"] = all(
        np.array_equal(mine, b4k_padding([pair[k] for pair in ids_theirs]))
        for k, mine in enumerate(padded_ours))
    assert result["padded_identical"], "padded=True arrays differ from bert4keras sequence_padding"
    mismatches = [i for i, (a, b) in enumerate(zip(zip(*ids_ours), ids_theirs))
                  if list(a[0]) != list(b[0]) or list(a[1]) != list(b[1])]
    result["identical"] = not mismatches
    if mismatches:
        i = mismatches[0]
        result["mismatch"] = {"count": len(mismatches), "text": texts[i][:80]}
    assert not mismatches, f"{len(mismatches)} sentences tokenize differently, e.g. {texts[mismatches[0]]!r}"
    return result


WORKERS = {
    "gemm": worker_gemm,
    "kerasnlp4su": lambda s: worker_kerasnlp4su(s, "graph"),
    "kerasnlp4su_xla": lambda s: worker_kerasnlp4su(s, "xla"),
    "kerasnlp4su_bf16": lambda s: worker_kerasnlp4su(s, "bf16"),
    "kerasnlp4su_frozen": lambda s: worker_kerasnlp4su(s, "frozen"),
    # Same model code on the other Keras backends (KERAS_BACKEND set by the parent).
    "kerasnlp4su_jax": lambda s: worker_kerasnlp4su(s, "backend"),
    "kerasnlp4su_torch": lambda s: worker_kerasnlp4su(s, "backend"),
    "kerashub": worker_kerashub,
    "bert4keras": worker_bert4keras,
    "hf_torch": worker_hf_torch,
    "tokenizer": worker_tokenizer,
}


def gemm_probe(n=2048, reps=3):
    """numpy fp32 GEMM GFLOP/s right now (other load on the machine shows up here)."""
    import numpy as np

    a = np.ones((n, n), "float32")
    return 2 * n ** 3 / timed(lambda: a @ a, 1, reps)["best"] / 1e9


def worker_main(name, spec_json):
    spec = json.loads(spec_json)
    setup_threads(spec["threads"])
    probes = [gemm_probe(spec["gemm_n"])]
    try:
        result = WORKERS[name](spec)
    except Exception as e:  # noqa: BLE001
        import traceback

        traceback.print_exc()
        result = {"error": f"{type(e).__name__}: {e}"[:300]}
    probes.append(gemm_probe(spec["gemm_n"]))
    result["gemm_probes"] = probes
    print("@@RESULT@@" + json.dumps(result, default=float), flush=True)


# ================================================================ parent
def run_worker(name, spec, python, timeout):
    env = dict(os.environ)
    env.update({k: str(spec["threads"]) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                   "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS",
                                                   "TF_NUM_INTRAOP_THREADS")})
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["KERAS_BACKEND"] = {"kerasnlp4su_jax": "jax", "kerasnlp4su_torch": "torch"}.get(
        name, "tensorflow")
    if name in ("bert4keras", "tokenizer"):
        env.update(TF_KERAS="1", TF_USE_LEGACY_KERAS="1")
    else:
        env.pop("TF_USE_LEGACY_KERAS", None)
        env.pop("TF_KERAS", None)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([python, os.path.abspath(__file__), "--worker", name,
                               "--spec", json.dumps(spec)],
                              capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout}s"}
    wall = time.perf_counter() - t0
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("@@RESULT@@"):
            result = json.loads(line[len("@@RESULT@@"):])
            result["wall_s"] = wall
            if "error" in result:
                tail = proc.stderr.strip().splitlines()[-3:]
                result["stderr_tail"] = tail
            return result
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": f"worker exited {proc.returncode}: {tail}"[:300], "wall_s": wall}


def fmt_rate(value, unit=""):
    if value >= 1000:
        return f"{value:,.0f}{unit}"
    return f"{value:.1f}{unit}"


def cell_error(result):
    message = result.get("error", "")
    return "error: " + message.replace("|", "/").replace("\n", " ")[:120]


def make_report(args, config, results, gemm, tok, started, elapsed):
    peak = gemm.get("peak")
    header = ["measurement"] + [PEERS[p] for p in args.peers]
    rows = []

    def model_row(label, key, batch, length, factor):
        flops = factor * forward_flops(config, batch, length)
        row = [label]
        for p in args.peers:
            r = results[p]
            if key not in r:
                row.append(cell_error(r) if "error" in r else "-")
                continue
            best = r[key]["best"]
            tps = batch * length / best
            pct = f" ({100 * flops / best / 1e9 / peak:.0f}%)" if peak else ""
            row.append(f"{fmt_rate(tps)}{pct}")
        rows.append(row)

    model_row("forward tokens/s, batch 8 x 128 (% of GEMM peak)", "fwd_8x128", 8, 128, 1)
    model_row("forward tokens/s, batch 1 x 512 (% of GEMM peak)", "fwd_1x512", 1, 512, 1)
    model_row("train-step tokens/s, batch 8 x 128, AdamW (% of peak)", "train_8x128", 8, 128, 3)
    row = ["official checkpoint load, s (model build + load)"]
    for p in args.peers:
        load = results[p].get("load")
        if load is None:
            row.append(cell_error(results[p]) if "error" in results[p] else "-")
        elif "error" in load:
            row.append(load["error"].replace("|", "/")[:120])
        else:
            row.append(f"{load['build'] + load['load']:.2f} "
                       f"({load['build']:.2f} + {load['load']:.2f})")
    rows.append(row)
    row = ["tokenizer sentences/s (ids identical to bert4keras)"]
    for p in args.peers:
        if p == "kerasnlp4su" and tok:
            if "kerasnlp4su" in tok:
                def speedup(ours, theirs):
                    return (f", {tok[ours] / tok[theirs]:.0f}x bert4keras"
                            if theirs in tok else "")
                row.append(f"{fmt_rate(tok['kerasnlp4su'])} (encode_batch lists"
                           f"{speedup('kerasnlp4su', 'bert4keras')}); "
                           f"{fmt_rate(tok['kerasnlp4su_padded'])} (padded=True arrays"
                           f"{speedup('kerasnlp4su_padded', 'bert4keras_padded')})")
            else:
                row.append(cell_error(tok))
        elif p == "bert4keras" and tok:
            row.append(f"{fmt_rate(tok['bert4keras'])} (encode loop); "
                       f"{fmt_rate(tok['bert4keras_padded'])} (loop + sequence_padding)"
                       if "bert4keras" in tok
                       else tok.get("bert4keras_error", cell_error(tok)))
        else:
            row.append("-")
    rows.append(row)

    lines = []
    lines.append(f"# kerasnlp4su vs peers ({'quick, 2 layers' if args.quick else 'BERT-base'})")
    lines.append("")
    lines.append(f"- date: {started}  (run took {elapsed / 60:.1f} min)")
    lines.append(f"- machine: {cpu_model()}, {os.cpu_count()} cores ({cpu_flags()}); "
                 f"every peer in its own process with {args.threads} intra-op threads")
    lines.append(f"- model: vocab {config['vocab_size']}, {config['num_hidden_layers']} layers, "
                 f"hidden {config['hidden_size']}, {config['num_attention_heads']} heads, "
                 f"intermediate {config['intermediate_size']}, float32 unless noted; "
                 f"forward = {forward_flops(config, 8, 128) / 1e9:.1f} GFLOP at 8 x 128, "
                 f"{forward_flops(config, 1, 512) / 1e9:.1f} GFLOP at 1 x 512; training = 3 x forward")
    if peak:
        parts = ", ".join(f"{k} {gemm[k]:.0f}" for k in ("numpy", "tensorflow", "torch")
                          if isinstance(gemm.get(k), float))
        lines.append(f"- fp32 GEMM peak (square {args.gemm_n}): **{peak:.0f} GFLOP/s**, the best of "
                     f"numpy / TF / torch ({parts}, best of {args.gemm_reps} each) and of numpy "
                     f"probes before and after every worker (they ranged "
                     f"{gemm.get('probes_min', 0):.0f}-{gemm.get('probes_max', 0):.0f}; "
                     "a low probe means other load on the machine)")
        lines.append(f"- load average at start / end: {args.load_start} / {load_average()}")
    else:
        lines.append(f"- fp32 GEMM peak: {cell_error(gemm)}")
    lines.append("- training: kerasnlp4su columns use `extend_with_compiled_update("
                 "keras.optimizers.AdamW)` (the same AdamW; its update runs as one XLA program "
                 "on TF), KerasHub and bert4keras their Keras AdamW, HF `torch.optim.AdamW`")
    lines.append(f"- timing: {args.warmup} warm-up call(s), then best of {args.reps} "
                 f"(forward) / {args.train_reps} (training); cells show tokens/s of the best "
                 "repetition and its fraction of the GEMM peak")
    lines.append("")
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
    for row in rows:
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    lines.append("Medians (tokens/s): " + "; ".join(
        f"{PEERS[p]}: " + ", ".join(
            f"{k} {b * n / results[p][k]['median']:,.0f}"
            for k, (b, n) in list(SHAPES.items()) + [("train_8x128", TRAIN_SHAPE)]
            if k in results[p])
        for p in args.peers if any(k in results[p] for k in ("fwd_8x128", "train_8x128"))))
    if tok and "kerasnlp4su" in tok:
        lines.append("")
        lines.append(f"Tokenizer: {tok['sentences']} mostly-Chinese sentences "
                     f"(mean {tok['mean_chars']:.0f} chars), vocab {config['vocab_size']}, "
                     f"maxlen 128, do_lower_case; kerasnlp4su engine '{tok.get('engine')}', "
                     f"per-sentence encode() loop {fmt_rate(tok['kerasnlp4su_encode_loop'])}/s; "
                     f"identical ids: {tok.get('identical', 'not checked')}; "
                     f"padded=True arrays identical to bert4keras's sequence_padding: "
                     f"{tok.get('padded_identical', 'not checked')}.")
    lines.append("")
    lines.append(targets(args, config, results, peak, tok))
    notes = [f"{PEERS[p]}: {r['error']}" for p, r in results.items() if "error" in r]
    if notes:
        lines.append("")
        lines.append("Errors: " + "; ".join(notes))
    return "\n".join(lines) + "\n"


def targets(args, config, results, peak, tok):
    """Issue 8 targets, checked against this run."""
    ours = [p for p in args.peers if p.startswith("kerasnlp4su")]
    others = [p for p in args.peers if not p.startswith("kerasnlp4su")]
    out = ["Targets (issue 8):", ""]

    def best_rate(peers, key, shape):
        rates = {p: shape[0] * shape[1] / results[p][key]["best"]
                 for p in peers if key in results[p]}
        return max(rates.items(), key=lambda kv: kv[1]) if rates else (None, None)

    for key, shape, factor, need in (("fwd_8x128", (8, 128), 1, 0.85),
                                     ("fwd_1x512", (1, 512), 1, 0.85),
                                     ("train_8x128", TRAIN_SHAPE, 3, 0.75)):
        # fp32 columns only for the fraction-of-peak target
        fp32 = [p for p in ours if p != "kerasnlp4su_bf16"]
        ours_p, ours_r = best_rate(fp32, key, shape)
        peer_p, peer_r = best_rate(others, key, shape)
        if ours_r is None:
            out.append(f"- {key}: no kerasnlp4su result")
            continue
        frac = factor * forward_flops(config, *shape) * ours_r / (shape[0] * shape[1]) / 1e9 / peak \
            if peak else None
        fastest = ("no peer result" if peer_r is None else
                   f"{'MET' if ours_r >= peer_r else 'MISSED'} vs fastest peer "
                   f"{PEERS[peer_p]} {fmt_rate(peer_r)} ({ours_r / peer_r:.2f}x)")
        bound = ("" if frac is None else
                 f"; {100 * frac:.0f}% of GEMM peak, target {100 * need:.0f}%: "
                 f"{'MET' if frac >= need else 'MISSED'}")
        out.append(f"- {key}: best fp32 kerasnlp4su ({PEERS[ours_p]}) {fmt_rate(ours_r)} tokens/s: "
                   f"{fastest}{bound}")
    if tok and "kerasnlp4su" in tok and "bert4keras" in tok:
        for what, ours, theirs in (("id lists", "kerasnlp4su", "bert4keras"),
                                   ("padded arrays", "kerasnlp4su_padded",
                                    "bert4keras_padded")):
            if ours in tok and theirs in tok:
                ratio = tok[ours] / tok[theirs]
                out.append(f"- tokenizer, {what}: {ratio:.1f}x bert4keras, target 20x: "
                           f"{'MET' if ratio >= 20 else 'MISSED'}")
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2-layer smoke run")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--peers", default=",".join(PEERS),
                        help=f"comma-separated subset of {','.join(PEERS)}")
    parser.add_argument("--reps", type=int, default=None, help="forward repetitions")
    parser.add_argument("--train-reps", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--sentences", type=int, default=None, help="tokenizer corpus size")
    parser.add_argument("--gemm-n", type=int, default=2048)
    parser.add_argument("--gemm-reps", type=int, default=5)
    parser.add_argument("--cache", default=os.environ.get("KERASNLP4SU_BENCH_CACHE",
                                                          "/tmp/kerasnlp4su-bench"))
    parser.add_argument("--legacy-python", default=sys.executable,
                        help="interpreter with bert4keras + tf-keras (default: this one)")
    parser.add_argument("--out", default=os.path.join(HERE, "results.md"),
                        help="Markdown file to write ('' to skip)")
    parser.add_argument("--json", default=None, help="also dump raw results here")
    parser.add_argument("--timeout", type=int, default=900, help="per-worker seconds")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker_main(args.worker, args.spec)

    args.peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    unknown = [p for p in args.peers if p not in PEERS]
    if unknown:
        parser.error(f"unknown peers {unknown}; choose from {list(PEERS)}")
    args.reps = args.reps or (2 if args.quick else 3)
    args.train_reps = args.train_reps or (2 if args.quick else 3)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    args.sentences = args.sentences or (2000 if args.quick else 20000)
    args.load_start = load_average()
    started = subprocess.run(["date", "-u"], capture_output=True, text=True).stdout.strip()
    t_start = time.perf_counter()
    config = bert_config(args.quick)
    files = ensure_files(args.cache, config, args.quick)
    # Warm the page cache so every loader reads the checkpoint from memory.
    with open(files["checkpoint"] + ".data-00000-of-00001", "rb") as f:
        while f.read(1 << 24):
            pass
    spec = dict(config=config, files=files, threads=args.threads, reps=args.reps,
                train_reps=args.train_reps, warmup=args.warmup, sentences=args.sentences,
                gemm_n=args.gemm_n, gemm_reps=args.gemm_reps)

    def log(name, result):
        brief = {k: (round(v["best"], 3) if isinstance(v, dict) and "best" in v else v)
                 for k, v in result.items() if k not in ("stderr_tail",)}
        print(f"# {name}: {json.dumps(brief, default=str)[:400]}", file=sys.stderr, flush=True)

    gemm = run_worker("gemm", spec, sys.executable, args.timeout)
    log("gemm", gemm)
    results = {}
    for peer in args.peers:
        python = args.legacy_python if peer == "bert4keras" else sys.executable
        results[peer] = run_worker(peer, spec, python, args.timeout)
        log(peer, results[peer])
    tok = None
    if "kerasnlp4su" in args.peers:
        tok = run_worker("tokenizer", spec, args.legacy_python, args.timeout)
        log("tokenizer", tok)
    probes = [v for r in [gemm] + list(results.values()) + [tok or {}]
              for v in r.get("gemm_probes", [])]
    if probes and gemm.get("peak"):
        gemm["probes_max"] = max(probes)
        gemm["probes_min"] = min(probes)
        gemm["peak"] = max(gemm["peak"], max(probes))
    elapsed = time.perf_counter() - t_start
    report = make_report(args, config, results, gemm, tok, started, elapsed)
    print(report)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(report)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"gemm": gemm, "results": results, "tokenizer": tok}, f, indent=1,
                      default=float)


if __name__ == "__main__":
    main()
