"""Multi-task learning with one encoder and the task id as the LayerNorm condition.

The Sohu text-matching baseline Su Jianlin describes (kexue.fm, conditional
LayerNorm, archives/7124 and the Sohu 2021 match contest post): every task
shares one BERT and one head; the task id, one-hot, conditions every
LayerNorm's gamma and beta through zero-initialised projections, so the
freshly built model equals the plain pretrained one and each task learns
its own small shift of the normalisation.
"""

import keras

from kerasnlp4su.models.transformer_model import TransformerModel


def task_conditional_encoder(config_path, checkpoint_path, num_tasks, cond_hidden_size=None,
                             **build):
    """A `build_transformer_model` encoder with a third input, `Input-Task` (int task id, shape (1,)).

    The id is one-hot encoded and becomes `layer_norm_cond` of every
    LayerNorm (`cond_hidden_size`: an optional Dense in between). Other
    keyword arguments go to `build_transformer_model` (e.g. `with_pool=True`).

    Example:
    >>> bert = task_conditional_encoder("checkpoints/tiny_bert/bert_config.json",
    ...                                 "checkpoints/tiny_bert/bert_model.ckpt", num_tasks=2,
    ...                                 with_pool=True)  # doctest: +SKIP
    >>> probs = keras.layers.Dense(2, activation="softmax")(bert.output)  # doctest: +SKIP
    >>> model = keras.Model(bert.inputs, probs)  # inputs: [token_ids, segment_ids, task_ids]  # doctest: +SKIP
    """
    # Imported here: kerasnlp4su.models imports kerasnlp4su.training.
    from kerasnlp4su.models import build_transformer_model

    num_tasks = int(num_tasks)
    if num_tasks < 1:
        raise ValueError(f"task_conditional_encoder: num_tasks must be >= 1, got {num_tasks}")
    task = keras.Input(shape=(1,), dtype="int32", name="Input-Task")
    one_hot = keras.layers.CategoryEncoding(num_tasks, output_mode="one_hot",
                                            name="Task-OneHot")(task)
    encoder = build_transformer_model(config_path, checkpoint_path, layer_norm_cond=num_tasks,
                                      layer_norm_cond_hidden_size=cond_hidden_size, **build)
    token_inputs = encoder.inputs[:-1]  # the last input is the condition vector
    outputs = encoder(token_inputs + [one_hot])
    return TransformerModel(token_inputs + [task], outputs, name="task_conditional_encoder")
