"""Load official weights into a built model, by variable name, never by order."""

import warnings

import numpy as np

from kerasnlp4su.checkpoints.readers import CheckpointReader
from kerasnlp4su.checkpoints.signatures import match_signatures


class CheckpointMismatchError(ValueError):
    """A checkpoint does not match the model: missing variables, wrong shapes or wrong family."""


# Names that moved to `kerasnlp4su.models.registry` (family detection walks
# the registry of model families, which this IO package never imports).
_MOVED = {"checkpoint_family": "kerasnlp4su.models.registry",
          "guess_model_family": "kerasnlp4su.models.registry"}


def __getattr__(name):
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_checkpoint_weights(model, reader, mapping, transforms=None, optional=(),
                            strict=True, model_type=None, families=None, signatures=None,
                            config=None):
    """Assign `reader`'s tensors to `model`'s variables through `mapping`.

    Args:
        model: a built `keras.Model`.
        reader: a `CheckpointReader`.
        mapping: `{keras variable path: checkpoint name}`.
        transforms: `{checkpoint name: fn(array) -> array}` applied after reading.
        optional: variable paths that are allowed to have no checkpoint value
            (e.g. the zero-initialised conditional-LayerNorm projections).
        strict: when True (default) any model variable without a checkpoint
            value, or with a shape mismatch, raises `CheckpointMismatchError`
            listing every problem. When False those variables keep their
            initial values and a warning lists them.
        model_type: the model name used in error messages.
        families: the checkpoint families this model reads, e.g.
            `("bert",)`; a checkpoint that fits only other families'
            `signatures` is an error even when every variable happens to be
            found (a BERT checkpoint holds every variable RoFormer needs, but
            is not a RoFormer). `None` skips the check.
        signatures: `{family: Signature}` (`kerasnlp4su.checkpoints.signatures`)
            to recognise the checkpoint's family by; `None`: not recognised.
        config: the release's config dict, when known: signatures that
            need config keys (NEZHA's `max_relative_position`) use it.

    Returns:
        A report dict: `loaded`, `missing`, `mismatched`, `unused` (checkpoint
        names no model variable took) and `family` (the best-fitting signature's family, or None).
    """
    if not isinstance(reader, CheckpointReader):
        raise TypeError(f"reader must be a CheckpointReader, got {type(reader).__name__}")
    transforms = transforms or {}
    available = reader.names()
    loaded, missing, mismatched, unmapped = [], [], [], []
    assignments = []
    for variable in model.weights:
        path = variable.path
        name = mapping.get(path)
        if name is None:
            if path not in optional:
                unmapped.append(path)
            continue
        if name not in available:
            missing.append((path, name))
            continue
        value = reader.get(name)
        if name in transforms:
            value = transforms[name](value)
        if tuple(value.shape) != tuple(variable.shape):
            mismatched.append((path, tuple(variable.shape), name, tuple(value.shape)))
            continue
        assignments.append((variable, value))
        loaded.append(name)

    used = set(loaded) | {name for _, name in missing}
    unused = sorted(available - used)
    problems = []
    if missing:
        lines = "\n".join(f"  {p}  <-  {n}" for p, n in missing)
        problems.append(f"{len(missing)} variable(s) missing from the checkpoint:\n{lines}")
    if mismatched:
        lines = "\n".join(f"  {p} {ps}  <-  {n} {ns}" for p, ps, n, ns in mismatched)
        problems.append(f"{len(mismatched)} shape mismatch(es) (model vs checkpoint):\n{lines}")
    if unmapped:
        lines = "\n".join(f"  {p}" for p in unmapped)
        problems.append(f"{len(unmapped)} model variable(s) with no checkpoint name:\n{lines}")
    candidates = match_signatures(available, signatures or {}, config)
    family, evidence = candidates[0] if candidates else (None, None)
    if family is not None and families is not None and \
            not any(f in families for f, _ in candidates):
        # Families with the same variable names (RoFormer v1, NEZHA) are named
        # together: only their configs tell them apart.
        alike = [f"model={f!r}" for f, e in candidates if e == evidence]
        alike = " or ".join(alike) + (" (the config tells which)" if len(alike) > 1 else "")
        problems.insert(0, (
            f"The checkpoint looks like a model={family!r} checkpoint (it holds {evidence!r}) "
            f"but the model is {model_type!r}, which reads "
            f"{' or '.join(map(repr, families))} checkpoints: pass {alike}."))
    if problems:
        hint = ""
        if family and model_type and families is None and \
                family.split("_")[0] != model_type.split("_")[0]:
            hint = (f"\nThe checkpoint looks like a model={family!r} checkpoint but the "
                    f"model is {model_type!r}: pass the matching model= argument.")
        message = (f"checkpoint {reader.path!r} does not match the {model_type or 'model'} "
                   f"model:\n" + "\n".join(problems) + hint)
        if strict:
            raise CheckpointMismatchError(
                message + "\nPass strict=False to load the rest and keep initial values.")
        warnings.warn(message, stacklevel=3)
    for variable, value in assignments:
        variable.assign(np.asarray(value, dtype=variable.dtype))
    return {"loaded": loaded, "missing": missing, "mismatched": mismatched, "unused": unused,
            "family": family}
