"""kerasnlp4su: the Keras 3 successor of bert4keras.

The most used names are importable from the top level; every module keeps
bert4keras's module names (`models`, `layers`, `tokenizers`, `snippets`,
`optimizers`, `backend`) so migrating is a change of imports.
"""

__version__ = "0.1.0"

from kerasnlp4su._quiet import default_tf_log_level, quiet_native_logs  # noqa: E402

# Importing Keras loads TensorFlow (the default backend), whose native start-up lines would otherwise
# reach the terminal twice, whatever TF_CPP_MIN_LOG_LEVEL says (see _quiet.py).
default_tf_log_level()
with quiet_native_logs():
    from kerasnlp4su.models import build_transformer_model  # noqa: E402
    from kerasnlp4su.snippets import DataGenerator, sequence_padding, text_segmentate, truncate_sequences  # noqa: E402
    from kerasnlp4su.tokenizers import SpTokenizer, Tokenizer, load_vocab  # noqa: E402
    from kerasnlp4su.sentence_encoder import SentenceEncoder  # noqa: E402

__all__ = [
    "DataGenerator", "SentenceEncoder", "SpTokenizer", "Tokenizer", "build_transformer_model", "load_vocab",
    "sequence_padding", "text_segmentate", "truncate_sequences",
]
