"""bert4keras 0.11.5 side of tests/test_b4k_models.py (run in ONE subprocess).

Usage: TF_KERAS=1 TF_USE_LEGACY_KERAS=1 python b4k_models_reference.py cases.pkl out.pkl
Each case: {"kwargs": build_transformer_model keyword arguments, "inputs": list of arrays}.
Writes the list of model outputs (a list of arrays per case, or the error text).
"""

import pickle
import sys


def main(cases_path, out_path):
    from bert4keras.models import build_transformer_model

    with open(cases_path, "rb") as f:
        cases = pickle.load(f)
    results = []
    for case in cases:
        try:
            model = build_transformer_model(**case["kwargs"])
            outputs = model.predict(case["inputs"], verbose=0)
            results.append(outputs if isinstance(outputs, list) else [outputs])
        except Exception as error:  # noqa: BLE001 - reported to the test
            results.append(f"{type(error).__name__}: {error}")
    with open(out_path, "wb") as f:
        pickle.dump(results, f)


if __name__ == "__main__":
    main(*sys.argv[1:3])
