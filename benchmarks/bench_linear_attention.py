"""Time and peak memory of linear vs softmax attention for n = 512 ... 16384.

Each (kind, n) point runs in a fresh subprocess so its peak resident memory
(`ru_maxrss`) is its own. Prints a table and checks the linear-scaling claim:
linear attention's time at 16384 must be at most ~35x its time at 512
(32x more tokens).

    python benchmarks/bench_linear_attention.py [--lengths 512,1024,...] [--causal]
"""

import argparse
import json
import os
import subprocess
import sys

WORKER = r"""
import json, os, resource, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np, keras
from kerasnlp4su.layers import MultiHeadAttention
kind, n, causal, heads, head_size = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", 4, 64
layer = MultiHeadAttention(heads, head_size, attention_type=kind, causal=causal,
                           position_encoding="rotary")
x = np.random.default_rng(0).standard_normal((1, n, heads * head_size)).astype("float32")
step = keras.ops.convert_to_tensor(x)
layer(step)  # build and warm up
times = []
for _ in range(3):
    t0 = time.perf_counter(); keras.ops.convert_to_numpy(layer(step)); times.append(time.perf_counter() - t0)
print(json.dumps({"time": min(times), "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(kind, n, causal):
    proc = subprocess.run([sys.executable, "-c", WORKER, kind, str(n), "1" if causal else "0"],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="512,1024,2048,4096,8192,16384")
    parser.add_argument("--softmax-max", type=int, default=8192,
                        help="longest n to try for softmax attention (O(n^2) memory)")
    parser.add_argument("--causal", action="store_true")
    args = parser.parse_args()
    lengths = [int(n) for n in args.lengths.split(",")]
    print(f"attention over 1 x n x 256 (4 heads x 64), RoPE, causal={args.causal}, "
          f"CPU threads={os.cpu_count()}")
    print(f"{'n':>6} | {'linear s':>9} {'linear MB':>9} | {'softmax s':>9} {'softmax MB':>10}")
    linear_times = {}
    for n in lengths:
        lin = run("linear", n, args.causal)
        soft = run("softmax", n, args.causal) if n <= args.softmax_max else {"skipped": True}
        linear_times[n] = lin.get("time")

        def fmt(r, key, width):
            value = r.get(key)
            return f"{value:>{width}.3f}" if isinstance(value, float) else f"{'-':>{width}}"

        print(f"{n:>6} | {fmt(lin, 'time', 9)} {fmt(lin, 'rss_mb', 9)} | "
              f"{fmt(soft, 'time', 9)} {fmt(soft, 'rss_mb', 10)}", flush=True)
    first, last = lengths[0], lengths[-1]
    if linear_times.get(first) and linear_times.get(last):
        ratio = linear_times[last] / linear_times[first]
        target = 35 * (last / first) / 32
        verdict = "OK" if ratio <= target else "ABOVE TARGET"
        print(f"linear time ratio n={last} / n={first}: {ratio:.1f}x "
              f"(tokens x{last // first}; target <= {target:.0f}x) {verdict}")


if __name__ == "__main__":
    main()
