"""BERT and RoBERTa (same architecture, same official checkpoint names)."""

from kerasnlp4su.models.transformer import Transformer, dense_names, norm_names


class BERT(Transformer):
    """BERT: learned positions, post-LayerNorm, tanh-approximate GELU (official code).

    Example:
    >>> model = BERT(vocab_size=100, hidden_size=8, num_hidden_layers=1,
    ...              num_attention_heads=2, intermediate_size=16, with_mlm=True).build()
    """

    official_gelu = "gelu_tanh"
    model_type = "bert"
    checkpoint_families = ("bert",)
    prefix = "bert"

    def embedding_mapping(self):
        p = self.prefix
        names = {
            "Embedding-Token/embeddings": f"{p}/embeddings/word_embeddings",
            "Embedding-Segment/embeddings": f"{p}/embeddings/token_type_embeddings",
            "Embedding-Position/embeddings": f"{p}/embeddings/position_embeddings",
        }
        names.update(norm_names("Embedding-Norm", f"{p}/embeddings/LayerNorm"))
        names.update(dense_names("Embedding-Mapping", f"{p}/encoder/embedding_hidden_mapping_in"))
        return names

    def block_mapping(self, keras_index, official_prefix):
        """Names of one block: keras block `keras_index` <- official scope."""
        attention, ffn = self.block_names(keras_index)
        o = official_prefix
        names = {}
        for part in ("query", "key", "value"):
            names.update(dense_names(f"{attention}/{part}", f"{o}/attention/self/{part}", self.use_bias))
        names.update(dense_names(f"{attention}/output", f"{o}/attention/output/dense", self.use_bias))
        names.update(norm_names(f"{attention}-Norm", f"{o}/attention/output/LayerNorm"))
        names.update(dense_names(f"{ffn}/intermediate", f"{o}/intermediate/dense", self.use_bias))
        names.update(dense_names(f"{ffn}/output", f"{o}/output/dense", self.use_bias))
        names.update(norm_names(f"{ffn}-Norm", f"{o}/output/LayerNorm"))
        return names

    def head_mapping(self):
        names = {}
        names.update(dense_names("Pooler-Dense", f"{self.prefix}/pooler/dense"))
        names["NSP-Proba/kernel"] = "cls/seq_relationship/output_weights"
        names["NSP-Proba/bias"] = "cls/seq_relationship/output_bias"
        names.update(dense_names("MLM-Dense", "cls/predictions/transform/dense"))
        names.update(norm_names("MLM-Norm", "cls/predictions/transform/LayerNorm"))
        names["MLM-Bias/bias"] = "cls/predictions/output_bias"
        return names

    def variable_mapping(self):
        names = self.embedding_mapping()
        for index in range(self.num_hidden_layers):
            names.update(self.block_mapping(index, f"{self.prefix}/encoder/layer_{index}"))
        names.update(self.head_mapping())
        return names

    def checkpoint_transforms(self):
        # The official NSP weights are stored as (2, hidden), transposed
        # relative to a Dense kernel.
        return {"cls/seq_relationship/output_weights": (lambda w: w.T, lambda w: w.T)}

    def embedding_variables(self):
        return [f"{self.prefix}/embeddings/word_embeddings", "cls/predictions/output_bias"]
