"""Checkpoint IO, and nothing else: this package never imports `kerasnlp4su.models`.

* `readers` / `writer`: official TF1 checkpoints (`TF1CheckpointReader`, `write_tf1_checkpoint`).
* `tf_bundle`: TensorFlow's checkpoint file format itself, read and written without TensorFlow
  (`BundleReader`, `write_bundle`); `readers` / `writer` use it.
* `safetensors`: HuggingFace `model.safetensors` files (`SafetensorsCheckpointReader`,
  `write_hf_directory`).
* `names`: name-mapping helpers (`dense_names`, `norm_names`, the `HFFamily` name table).
* `signatures`: recognising a checkpoint's family from data the families declare.
* `loader`: assigning a reader's tensors to a model's variables by name.
* `atomic`: the one atomic-write helper.

Model families hand their tables in as arguments (`kerasnlp4su.models.registry`).

A regular package (not a namespace folder) so that `find_packages` ships it in the wheel.
"""
