import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # CI also runs jax and torch


def pytest_collection_modifyitems(items):
    # Every layer's shared harness check is backend-specific by construction, wherever it lives.
    for item in items:
        if item.name.startswith("test_layer_harness") or item.path.name == "test_layer_harness.py":
            item.add_marker("backend_core")
