"""LoRA, R-Drop, ChildTuning, P-tuning, PET and NSP zero-shot against re-derivations.

Every number here is recomputed independently: NumPy forward passes and
finite-difference gradients in float64, or the technique's definition
evaluated by hand. The tests marked `backend_core` (the cheap ones: no tiny BERT, except P-tuning's
frozen-weights check) also run on JAX and PyTorch (test_backends.py).
"""

import os

import keras
import numpy as np
import pytest

from backend_utils import forward, to_np
from reference import numeric_grad
from test_techniques_compression import tiny_classifier  # the tiny BERT + 2-way softmax head
from kerasnlp4su.layers import Dense, Embedding
from kerasnlp4su.training import (
    apply_lora,
    load_lora_weights,
    lora_weights,
    merge_lora,
    rdrop_training,
    save_lora_weights,
    symmetric_kl,
    unmerge_lora,
)

HERE = os.path.dirname(os.path.abspath(__file__))
TINY = os.path.join(HERE, "..", "checkpoints", "tiny_bert")
RNG = np.random.default_rng(0)



def token_batch(batch=4, length=8, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(100, 2000, size=(batch, length)).astype("int32")
    ids[:, 0], ids[:, -1] = 2, 3
    return [ids, np.zeros_like(ids)], (np.arange(batch) % 2).astype("int32")


# ------------------------------------------------------------------ LoRA
def dense_model(units=3, features=5):
    inputs = keras.Input((features,))
    outputs = Dense(units, name="proj")(inputs)
    return keras.Model(inputs, outputs)


@pytest.mark.backend_core
def test_lora_forward_is_base_plus_scaled_low_rank_product():
    model = dense_model()
    apply_lora(model, rank=2, alpha=6.0, targets="proj")
    layer = model.get_layer("proj")
    b = RNG.normal(size=(2, 3)).astype("float32")
    layer.lora_kernel_b.assign(b)  # zeros at start: the update would be invisible
    x = RNG.normal(size=(4, 5)).astype("float32")
    W, bias, A = (to_np(v).astype("float64") for v in (layer._kernel, layer.bias,
                                                        layer.lora_kernel_a))
    expected = x @ (W + 6.0 / 2 * A @ b) + bias
    np.testing.assert_allclose(to_np(model(x)), expected, rtol=1e-5, atol=1e-5)

    merged_kernel = W + 3.0 * A @ b
    merge_lora(model)
    np.testing.assert_allclose(to_np(layer._kernel), merged_kernel, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(to_np(model(x)), expected, rtol=1e-5, atol=1e-5)
    unmerge_lora(model)
    np.testing.assert_allclose(to_np(layer._kernel), W, atol=1e-6)
    np.testing.assert_allclose(to_np(model(x)), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.backend_core
def test_lora_on_the_tied_embedding_changes_lookup_and_mlm_projection():
    inputs = keras.Input((3,), dtype="int32")
    embedding = Embedding(10, 4, name="Embedding-Token")
    hidden = embedding(inputs)
    model = keras.Model(inputs, embedding(hidden, mode="dense"))
    apply_lora(model, rank=2, alpha=2.0, targets="^Embedding-Token$")
    b = RNG.normal(size=(2, 4)).astype("float32")
    embedding.lora_embeddings_b.assign(b)
    table = to_np(embedding._embeddings) + to_np(embedding.lora_embeddings_a) @ b
    ids = np.array([[1, 5, 9]], "int32")
    np.testing.assert_allclose(to_np(model(ids)), table[ids] @ table.T, rtol=1e-4, atol=1e-5)


def test_lora_trains_only_the_factors_and_the_named_head(tmp_path):
    model = tiny_classifier()
    layers = apply_lora(model, rank=4, alpha=8, trainable="^Classifier/")
    assert sorted(layer.path for layer in layers) == [
        f"Transformer-{i}-MultiHeadSelfAttention/{p}" for i in (0, 1) for p in ("query", "value")]
    trainable = sorted(w.path for w in model.trainable_weights)
    assert trainable == sorted(["Classifier/kernel", "Classifier/bias", *lora_weights(model)])
    frozen = {w.path: to_np(w).copy() for w in model.non_trainable_weights}
    factors = lora_weights(model)
    x, y = token_batch()
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    for w in model.non_trainable_weights:
        np.testing.assert_array_equal(to_np(w), frozen[w.path], err_msg=w.path)
    moved = [k for k, v in lora_weights(model).items() if not np.array_equal(v, factors[k])]
    assert len(moved) == len(factors)

    # Only the factors travel; a fresh model with the same LoRA layers reproduces the outputs.
    path = str(tmp_path / "adapter.safetensors")
    save_lora_weights(model, path)
    fresh = tiny_classifier()
    fresh.get_layer("Classifier").set_weights(model.get_layer("Classifier").get_weights())
    apply_lora(fresh, rank=4, alpha=8)
    load_lora_weights(fresh, path)
    np.testing.assert_allclose(forward(fresh, x), forward(model, x),
                               atol=1e-6)
    other = tiny_classifier()
    apply_lora(other, rank=2, alpha=8)
    with pytest.raises(ValueError, match="has shape"):
        load_lora_weights(other, path)
    other = tiny_classifier()
    apply_lora(other, rank=4, alpha=8, targets="MultiHeadSelfAttention/query$")
    with pytest.raises(ValueError, match="do not match the model"):
        load_lora_weights(other, path)


@pytest.mark.backend_core
def test_lora_rejects_targets_that_match_nothing():
    with pytest.raises(ValueError, match="matches no layer"):
        apply_lora(dense_model(), rank=2, targets="nothing-here")


# ---------------------------------------------------------------- R-Drop
class SecondHalfOffset(keras.layers.Layer):
    """Adds `offset` to the second half of the batch: a deterministic stand-in for a
    second dropout mask, so the two copies of `[x; x]` differ by a known amount."""

    def __init__(self, offset, **kwargs):
        super().__init__(**kwargs)
        self.offset = np.asarray(offset, "float32")

    def call(self, h):
        half = keras.ops.shape(h)[0] // 2
        first = keras.ops.zeros_like(h[:half])
        second = keras.ops.zeros_like(h[half:]) + self.offset
        return h + keras.ops.concatenate([first, second], axis=0)


def softmax(z):
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def rdrop_reference_loss(W, b, x, y, offset, alpha):
    """Mean CE over both passes + alpha / 4 * mean symmetric KL, in float64."""
    p1, p2 = softmax(x @ W + b), softmax(x @ W + b + offset)
    ce = -np.mean(np.log(np.concatenate([p1, p2])[np.arange(2 * len(y)), np.tile(y, 2)]))
    kl = np.sum((p1 - p2) * (np.log(p1) - np.log(p2)), -1)
    return ce + alpha / 4 * kl.mean()


@pytest.mark.backend_core
@pytest.mark.parametrize("jit_compile", [False, True])
def test_rdrop_step_matches_finite_differences_of_the_rdrop_objective(jit_compile):
    x = RNG.normal(size=(4, 3)).astype("float32")
    y = np.array([0, 2, 1, 2], "int32")
    offset = np.array([0.7, -0.4, 0.2], "float32")
    keras.utils.set_random_seed(0)
    inputs = keras.Input((3,))
    logits = SecondHalfOffset(offset)(keras.layers.Dense(3, name="out")(inputs))
    model = keras.Model(inputs, keras.layers.Softmax()(logits))
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy",
                  jit_compile=jit_compile)
    rdrop_training(model, alpha=4.0)
    W, b = (to_np(v).astype("float64") for v in model.get_layer("out").weights)
    expected = rdrop_reference_loss(W, b, x, y, offset, 4.0)
    gW = numeric_grad(lambda w: rdrop_reference_loss(w, b, x, y, offset, 4.0), W, 1e-6)
    gb = numeric_grad(lambda v: rdrop_reference_loss(W, v, x, y, offset, 4.0), b, 1e-6)
    logs = model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0).history
    assert logs["loss"][0] == pytest.approx(expected, rel=1e-4)
    new_W, new_b = (to_np(v) for v in model.get_layer("out").weights)
    np.testing.assert_allclose(new_W, W - 0.5 * gW, atol=2e-5)
    np.testing.assert_allclose(new_b, b - 0.5 * gb, atol=2e-5)


@pytest.mark.backend_core
def test_symmetric_kl_from_logits_equals_from_probabilities():
    a, c = RNG.normal(size=(5, 4)), RNG.normal(size=(5, 4))
    p, q = softmax(a), softmax(c)
    expected = np.sum(p * np.log(p / q) + q * np.log(q / p), -1)
    np.testing.assert_allclose(to_np(symmetric_kl(a.astype("float32"), c.astype("float32"),
                                                  from_logits=True)), expected, rtol=1e-4)
    np.testing.assert_allclose(to_np(symmetric_kl(p.astype("float32"), q.astype("float32"))),
                               expected, rtol=1e-4)


def test_rdrop_learns_on_a_tiny_bert_and_rejects_two_outputs():
    model = tiny_classifier()
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    rdrop_training(model, alpha=4.0)
    x, y = token_batch()
    logs = model.fit(x, y, batch_size=4, epochs=3, verbose=0).history
    assert np.all(np.isfinite(logs["loss"])) and logs["loss"][-1] < logs["loss"][0]
    inputs = keras.Input((2,))
    two = keras.Model(inputs, [keras.layers.Dense(2)(inputs), keras.layers.Dense(2)(inputs)])
    with pytest.raises(ValueError, match="one output"):
        rdrop_training(two)


# ----------------------------------------------------------- ChildTuning
def linear_model(features=40, units=50, seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((features,))
    return keras.Model(inputs, keras.layers.Dense(units, name="lin")(inputs))


def linear_mse_grads(W, b, x, y):
    """d mean((x W + b - y)^2) / d (W, b) in float64."""
    out = x @ W + b
    dout = 2 * (out - y) / out.size
    return x.T @ dout, dout.sum(0)


def linear_data(n=8, features=40, units=50, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, features)).astype("float32"),
            rng.normal(size=(n, units)).astype("float32"))


@pytest.mark.backend_core
@pytest.mark.parametrize("jit_compile", [False, True])
def test_child_tuning_f_keeps_a_p_fraction_of_gradients_scaled_by_one_over_p(jit_compile):
    from kerasnlp4su.optimizers import extend_with_child_tuning

    x, y = linear_data()
    model = linear_model()
    ChildSGD = extend_with_child_tuning(keras.optimizers.SGD)
    model.compile(ChildSGD(learning_rate=0.5, child_mode="F", reserve_p=0.3, child_seed=1),
                  loss="mse", jit_compile=jit_compile)
    masks = []
    for _ in range(2):
        W, b = (to_np(v).astype("float64") for v in model.get_layer("lin").weights)
        gW, _ = linear_mse_grads(W, b, x, y)
        model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
        step = (W - to_np(model.get_layer("lin").kernel)) / 0.5
        kept = np.abs(step) > 1e-9
        # Kept entries carry g / p, the others nothing at all.
        np.testing.assert_allclose(step[kept], gW[kept] / 0.3, rtol=1e-3, atol=1e-6)
        assert 0.26 < kept.mean() < 0.34, kept.mean()
        masks.append(kept)
    assert (masks[0] != masks[1]).mean() > 0.2  # a fresh mask every step


@pytest.mark.backend_core
def test_child_tuning_d_fisher_masks_and_masked_update():
    from kerasnlp4su.optimizers import (
        child_network_masks,
        extend_with_child_tuning,
        fisher_information,
    )

    x, y = linear_data(n=12)
    model = linear_model()
    W, b = (to_np(v).astype("float64") for v in model.get_layer("lin").weights)
    fisher = fisher_information(model, x, y, "mse", batch_size=4)
    expected = [np.zeros_like(W), np.zeros_like(b)]
    for start in range(0, 12, 4):
        for acc, g in zip(expected, linear_mse_grads(W, b, x[start:start + 4], y[start:start + 4])):
            acc += g ** 2
    np.testing.assert_allclose(fisher["lin/kernel"], expected[0], rtol=1e-4, atol=1e-10)
    np.testing.assert_allclose(fisher["lin/bias"], expected[1], rtol=1e-4, atol=1e-10)
    np.testing.assert_array_equal(to_np(model.get_layer("lin").kernel), W.astype("float32"))

    masks = child_network_masks(fisher, reserve_p=0.25)
    everything = np.concatenate([expected[0].ravel(), expected[1].ravel()])
    threshold = np.sort(everything)[::-1][int(round(0.25 * everything.size)) - 1]
    np.testing.assert_array_equal(masks["lin/kernel"], expected[0] >= threshold)
    assert sum(m.sum() for m in masks.values()) == pytest.approx(0.25 * everything.size, abs=1)

    ChildSGD = extend_with_child_tuning(keras.optimizers.SGD)
    model.compile(ChildSGD(learning_rate=0.5, child_mode="D", child_masks=masks), loss="mse")
    gW, gb = linear_mse_grads(W, b, x[:4], y[:4])
    model.fit(x[:4], y[:4], batch_size=4, epochs=1, verbose=0)
    np.testing.assert_allclose(to_np(model.get_layer("lin").kernel),
                               W - 0.5 * gW * masks["lin/kernel"], atol=1e-6)
    np.testing.assert_allclose(to_np(model.get_layer("lin").bias),
                               b - 0.5 * gb * masks["lin/bias"], atol=1e-6)


@pytest.mark.backend_core
def test_child_tuning_rejects_bad_options():
    from kerasnlp4su.optimizers import extend_with_child_tuning

    ChildAdam = extend_with_child_tuning(keras.optimizers.Adam)
    with pytest.raises(ValueError, match="child_mode"):
        ChildAdam(child_mode="X")
    with pytest.raises(ValueError, match="reserve_p"):
        ChildAdam(reserve_p=0.0)
    with pytest.raises(ValueError, match="child_masks"):
        ChildAdam(child_mode="D")
    config = ChildAdam(learning_rate=1e-3, reserve_p=0.2, child_exclude=["Classifier"]).get_config()
    assert ChildAdam.from_config(config).reserve_p == 0.2


# ---------------------------------------------------- PET, P-tuning, NSP
@pytest.fixture(scope="module")
def tokenizer():
    from kerasnlp4su.tokenizers import Tokenizer

    return Tokenizer(os.path.join(TINY, "vocab.txt"), do_lower_case=True)


def tiny_bert(**heads):
    from kerasnlp4su.models import build_transformer_model

    return build_transformer_model(os.path.join(TINY, "bert_config.json"),
                                   os.path.join(TINY, "bert_model.ckpt"), **heads)


@pytest.mark.backend_core
def test_cloze_scores_sum_log_probabilities_of_multi_token_label_words():
    from kerasnlp4su.training import ClozeScores

    probs = softmax(RNG.normal(size=(3, 6, 10)) * 2)
    positions = np.array([[1, 2], [4, 5], [0, 3]], "int32")
    label_ids = np.array([[7, 2], [3, 3], [9, 0]], "int32")  # 3 labels, 2 tokens each
    layer = ClozeScores(label_ids)
    got = to_np(layer([probs.astype("float32"), positions]))
    scores = np.array([[np.log(probs[b, positions[b, 0], w0]) + np.log(probs[b, positions[b, 1], w1])
                        for w0, w1 in label_ids] for b in range(3)])
    np.testing.assert_allclose(got, softmax(scores), rtol=1e-4)
    assert ClozeScores.from_config(layer.get_config()).label_token_ids.tolist() == label_ids.tolist()


def test_cloze_template_places_masks_and_truncates_only_the_text(tokenizer):
    from kerasnlp4su.training import ClozeTemplate

    template = ClozeTemplate(tokenizer, "这{mask}。{text}", {0: "差", 1: "好"}, maxlen=10)
    token_ids, segment_ids, positions = template.encode(["质量不错", "一二三四五六七八九十"])
    expected_prefix = [tokenizer.token_to_id(t) for t in ["[CLS]", "这", "[MASK]", "。"]]
    assert token_ids[0, :4].tolist() == expected_prefix and positions.tolist() == [[2], [2]]
    assert tokenizer.ids_to_tokens(token_ids[1].tolist())[4:] == list("一二三四五") + ["[SEP]"]
    assert token_ids.shape == (2, 10) and not segment_ids.any()
    assert template.label_token_ids.tolist() == [[tokenizer.token_to_id("差")],
                                                 [tokenizer.token_to_id("好")]]
    with pytest.raises(ValueError, match="same number"):
        ClozeTemplate(tokenizer, "{mask}{text}", {0: "差", 1: "很好"})
    with pytest.raises(ValueError, match="once each"):
        ClozeTemplate(tokenizer, "{text}", {0: "差", 1: "好"})


def test_pet_zero_shot_is_the_renormalised_mlm_probability_and_few_shot_learns(tokenizer):
    from kerasnlp4su.training import ClozeTemplate, cloze_classifier

    keras.utils.set_random_seed(0)
    mlm = tiny_bert(with_mlm=True)
    template = ClozeTemplate(tokenizer, "很{mask}。{text}", {0: "差", 1: "好"}, maxlen=16)
    x = template.encode(["质量不错", "this book很差！", "价格干净舒服。", "这个手机无聊。"])
    pet = cloze_classifier(mlm, template)
    full = forward(mlm, x[:2])[np.arange(4), x[2][:, 0]][:, template.label_token_ids[:, 0]]
    np.testing.assert_allclose(forward(pet, x), full / full.sum(-1, keepdims=True),
                               rtol=1e-4)
    y = np.array([1, 0, 1, 0])
    pet.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    logs = pet.fit(x, y, batch_size=4, epochs=15, verbose=0).history
    assert logs["loss"][-1] < 0.8 * logs["loss"][0]


@pytest.mark.backend_core
def test_ptuning_trains_only_the_prompt_rows(tokenizer):
    from kerasnlp4su.training import ClozeTemplate, cloze_classifier, ptuning_model

    keras.utils.set_random_seed(0)
    mlm = tiny_bert(with_mlm=True)
    table = mlm.get_layer("Embedding-Token").embeddings
    prompt_ids = [5, 6, 7]
    tuned = ptuning_model(mlm, prompt_ids)
    assert [w.path for w in tuned.trainable_weights] == ["Embedding-Token-Prompts/prompts"]
    np.testing.assert_array_equal(to_np(tuned.trainable_weights[0]), to_np(table)[prompt_ids])
    template = ClozeTemplate(tokenizer, "[unused1][unused2]{mask}[unused3]{text}",
                             {0: "差", 1: "好"}, maxlen=16)
    x = template.encode(["质量不错", "this book很差！", "价格干净舒服。", "这个手机无聊。"])
    assert set(prompt_ids) <= set(x[0][0].tolist())
    pet = cloze_classifier(tuned, template)
    frozen = {w.path: to_np(w).copy() for w in mlm.weights}
    before = forward(pet, x)
    pet.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    pet.fit(x, np.array([1, 0, 1, 0]), batch_size=4, epochs=3, verbose=0)
    for w in mlm.weights:  # backbone, heads and the whole original table
        np.testing.assert_array_equal(to_np(w), frozen[w.path], err_msg=w.path)
    prompts = to_np(tuned.get_layer("Embedding-Token-Prompts").prompts)
    assert np.abs(prompts - frozen["Embedding-Token/embeddings"][prompt_ids]).min(-1).max() > 0
    assert np.abs(forward(pet, x) - before).max() > 1e-4
    # Texts without virtual tokens see exactly the original model.
    plain = [x[0].copy(), x[1]]
    plain[0][np.isin(plain[0], prompt_ids)] = 100
    np.testing.assert_allclose(forward(tuned, plain), forward(mlm, plain),
                               atol=1e-6)


def test_ptuning_trains_a_new_head_with_the_prompts_but_never_the_table(tokenizer):
    from kerasnlp4su.training import ClozeTemplate, cloze_classifier, ptuning_model

    keras.utils.set_random_seed(0)
    mlm = tiny_bert(with_mlm=True)
    table = to_np(mlm.get_layer("Embedding-Token").embeddings).copy()
    prompt_ids, words = [5, 6], tokenizer.tokens_to_ids(["很", "好"])
    with pytest.raises(ValueError, match="^trainable .* matches the embedding table"):
        ptuning_model(mlm, prompt_ids, trainable="Embedding-")
    with pytest.raises(ValueError, match=r"^trainable prefixes \['MLM_'\] match no layer"):
        ptuning_model(mlm, prompt_ids, trainable=["MLM-", "MLM_"])
    with pytest.raises(ValueError, match="^initial_ids .* one row per prompt id"):
        ptuning_model(mlm, prompt_ids, initial_ids=words[:1])
    tuned = ptuning_model(mlm, prompt_ids, initial_ids=words, trainable=("MLM-",))
    head = {"MLM-Dense/kernel", "MLM-Dense/bias", "MLM-Norm/gamma", "MLM-Norm/beta",
            "MLM-Bias/bias"}
    paths = [w.path for w in tuned.trainable_weights]
    assert sorted(paths) == sorted(head | {"Embedding-Token-Prompts/prompts"}), paths
    # The prompts start as the real words' rows, not their own.
    np.testing.assert_array_equal(to_np(tuned.get_layer("Embedding-Token-Prompts").prompts),
                                  table[words])
    template = ClozeTemplate(tokenizer, "[unused1]{mask}[unused2]{text}", {0: "差", 1: "好"},
                             maxlen=16)
    pet = cloze_classifier(tuned, template)
    frozen = {w.path: to_np(w).copy() for w in mlm.weights}
    pet.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    pet.fit(template.encode(["质量不错", "很差！"]), np.array([1, 0]), batch_size=2, epochs=2,
            verbose=0)
    for w in mlm.weights:  # the head moved; the table (tied to the MLM output) and backbone did not
        moved = np.abs(to_np(w) - frozen[w.path]).max() > 0
        assert moved == (w.path in head), w.path
    np.testing.assert_array_equal(to_np(mlm.get_layer("Embedding-Token").embeddings), table)
    assert np.abs(to_np(tuned.get_layer("Embedding-Token-Prompts").prompts)
                  - table[words]).min(-1).max() > 0


def test_nsp_zero_shot_scores_each_text_label_pair(tokenizer):
    from kerasnlp4su.snippets import sequence_padding
    from kerasnlp4su.training import nsp_zero_shot

    nsp = tiny_bert(with_nsp=True)
    texts, labels = ["质量不错", "很差"], ["我很满意。", "我很失望。", "一般。"]
    scores = nsp_zero_shot(nsp, tokenizer, texts, labels, maxlen=16)
    assert scores.shape == (2, 3)
    for i, text in enumerate(texts):
        for j, label in enumerate(labels):
            ids, segments = tokenizer.encode(text, label, maxlen=16)
            assert segments[-1] == 1 and ids.count(tokenizer.token_to_id("[SEP]")) == 2
            probs = forward(nsp, [sequence_padding([ids], length=16),
                                 sequence_padding([segments], length=16)])
            assert scores[i, j] == pytest.approx(float(probs[0, 0]), rel=1e-5)
    with pytest.raises(ValueError, match="with_nsp=True"):
        nsp_zero_shot(tiny_bert(with_mlm=True), tokenizer, texts, labels)


def test_mlm_output_keeps_the_padding_mask_and_trains_with_token_weights():
    # The tied MLM projection used to mark hidden == 0 as padding: a
    # (batch, length, hidden) mask that broke any compiled MLM loss.
    mlm = tiny_bert(with_mlm=True)
    x, _ = token_batch(batch=2, length=6)
    x[0][1, 4:] = 0
    out = mlm(x)
    if keras.backend.backend() == "tensorflow":  # eager tensors carry the mask there
        np.testing.assert_array_equal(to_np(out._keras_mask), x[0] != 0)
    weights = np.zeros(x[0].shape, "float32")
    weights[:, 2] = 1
    mlm.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    logs = mlm.fit(x, x[0], sample_weight=weights, epochs=1, verbose=0).history
    assert np.isfinite(logs["loss"][0])


@pytest.mark.parametrize("module", ["kerasnlp4su.training.rdrop",
                                    "kerasnlp4su.training.prompts",
                                    "kerasnlp4su.optimizers.child_tuning"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), extraglobs={"keras": keras, "np": np},
                             optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0, result
