"""Independent NumPy re-derivations of the official models, for parity tests.

Written from the official `modeling.py` semantics, reading weights straight
from the checkpoint by official name; it shares no code with the library.
"""

import math

import numpy as np
from scipy.special import erf


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def gelu_erf(x):
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def layer_norm(x, gamma, beta, eps=1e-12):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def softmax(x, axis=-1):
    x = x - x.max(axis, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis, keepdims=True)


def rope(x):
    """Interleaved-pair rotary embedding along axis 1 of (batch, length, heads, d)."""
    length, d = x.shape[1], x.shape[-1]
    out = np.empty_like(x)
    for i in range(d // 2):
        theta = 10000.0 ** (-2.0 * i / d)
        angle = np.arange(length) * theta
        c = np.cos(angle)[None, :, None]
        s = np.sin(angle)[None, :, None]
        a, b = x[..., 2 * i], x[..., 2 * i + 1]
        out[..., 2 * i] = a * c - b * s
        out[..., 2 * i + 1] = b * c + a * s
    return out


def attention(x, get, prefix, heads, mask_bias, use_bias=True, rotary=False, scope="attention/self"):
    def dense(inp, name):
        y = inp @ get(f"{prefix}/{name}/kernel")
        return y + get(f"{prefix}/{name}/bias") if use_bias else y

    b, n, h = x.shape
    q = dense(x, f"{scope}/query").reshape(b, n, heads, -1)
    k = dense(x, f"{scope}/key").reshape(b, n, heads, -1)
    v = dense(x, f"{scope}/value").reshape(b, n, heads, -1)
    if rotary:
        q, k = rope(q), rope(k)
    scores = np.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(q.shape[-1]) + mask_bias
    ctx = np.einsum("bhqk,bkhd->bqhd", softmax(scores), v).reshape(b, n, -1)
    return ctx


def bert_forward(reader, config, token_ids, segment_ids, gelu=gelu_tanh, prefix="bert",
                 rotary=False, mask="padding"):
    """Official BERT forward pass. Returns (sequence_output, pooled, mlm_logits, nsp_logits)."""
    get = reader.get_tensor
    heads = config["num_attention_heads"]
    x = get(f"{prefix}/embeddings/word_embeddings")[token_ids]
    x = x + get(f"{prefix}/embeddings/token_type_embeddings")[segment_ids]
    n = token_ids.shape[1]
    if not rotary:
        x = x + get(f"{prefix}/embeddings/position_embeddings")[:n][None]
    x = layer_norm(x, get(f"{prefix}/embeddings/LayerNorm/gamma"), get(f"{prefix}/embeddings/LayerNorm/beta"))
    keep = (token_ids != 0)[:, None, None, :]
    if mask == "lm":
        keep = keep & np.tril(np.ones((n, n), bool))[None, None]
    elif mask == "unilm":
        order = np.cumsum(segment_ids, axis=1)
        keep = keep & (order[:, None, :] <= order[:, :, None])[:, None]
    bias = np.where(keep, 0.0, -10000.0)
    for i in range(config["num_hidden_layers"]):
        p = f"{prefix}/encoder/layer_{i}"
        ctx = attention(x, get, p, heads, bias, rotary=rotary)
        a = ctx @ get(f"{p}/attention/output/dense/kernel") + get(f"{p}/attention/output/dense/bias")
        x = layer_norm(x + a, get(f"{p}/attention/output/LayerNorm/gamma"), get(f"{p}/attention/output/LayerNorm/beta"))
        f = gelu(x @ get(f"{p}/intermediate/dense/kernel") + get(f"{p}/intermediate/dense/bias"))
        f = f @ get(f"{p}/output/dense/kernel") + get(f"{p}/output/dense/bias")
        x = layer_norm(x + f, get(f"{p}/output/LayerNorm/gamma"), get(f"{p}/output/LayerNorm/beta"))
    seq = x
    outputs = {"sequence": seq}
    names = set(reader.get_variable_to_shape_map())
    if f"{prefix}/pooler/dense/kernel" in names:
        pooled = np.tanh(seq[:, 0] @ get(f"{prefix}/pooler/dense/kernel") + get(f"{prefix}/pooler/dense/bias"))
        outputs["pooled"] = pooled
        if "cls/seq_relationship/output_weights" in names:
            outputs["nsp"] = pooled @ get("cls/seq_relationship/output_weights").T + get("cls/seq_relationship/output_bias")
    if "cls/predictions/output_bias" in names:
        t = gelu(seq @ get("cls/predictions/transform/dense/kernel") + get("cls/predictions/transform/dense/bias"))
        t = layer_norm(t, get("cls/predictions/transform/LayerNorm/gamma"), get("cls/predictions/transform/LayerNorm/beta"))
        outputs["mlm"] = t @ get(f"{prefix}/embeddings/word_embeddings").T + get("cls/predictions/output_bias")
    return outputs


def numeric_grad(f, x, h):
    """Central-difference gradient of the scalar `f` at the array `x` (step `h`, in `x`'s dtype)."""
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[i] = h
        grad[i] = (f(x + step) - f(x - step)) / (2 * h)
    return grad
