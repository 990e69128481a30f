"""Checks the C++ encoder (esamp-embed) against the float64 numpy reference (minilm_reference.py):
on 50 varied texts, every embedding element within 1e-5.

  python3 tests/embed/check_embeddings.py path/to/esamp-embed
"""

import json
import random
import subprocess
import sys

import numpy as np

from minilm_reference import Reference, default_dir

TOLERANCE = 1e-5


def texts():
    rng = random.Random(7)
    fixed = [
        "The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium.",
        "Once upon a time, there was a little girl named Lily.", "", "A", "café au lait, s'il vous plaît",
        "東京タワーは高い。", "Numbers: 1, 22, 333, 4444.", "supercalifragilisticexpialidocious " * 3,
    ]
    words = ("once upon a time there was a little girl named lily she loved to play outside in the "
             "sun with her dog and friends one day they found a big red ball in the park and were "
             "happy tom said hello mom asked why the sky is blue because").split()
    out = list(fixed)
    while len(out) < 50:
        n = rng.choice([3, 10, 30, 60, 120, 200, 300])  # 300 words exceed the 256-token truncation
        out.append(" ".join(rng.choice(words) for _ in range(n)).capitalize() + rng.choice([".", "!", "?"]))
    return out


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    inputs = texts()
    run = subprocess.run([sys.argv[1], "--dir", default_dir()], capture_output=True, check=False,
                         input="".join(json.dumps(t) + "\n" for t in inputs).encode())
    if run.returncode != 0:
        sys.exit(f"{sys.argv[1]} failed ({run.returncode}): {run.stderr.decode()}")
    got = np.array([json.loads(line) for line in run.stdout.decode().splitlines()])
    reference = Reference(default_dir())
    expected = np.array([reference.embed(t) for t in inputs])
    if got.shape != expected.shape:
        sys.exit(f"esamp-embed gave embeddings of shape {got.shape}, expected {expected.shape}")
    error = np.abs(got - expected).max(axis=1)
    worst = int(error.argmax())
    print(f"{len(inputs)} texts, max |C++ - float64| = {error.max():.2e} (text {worst}, "
          f"{len(reference.tokenize(inputs[worst]))} tokens), tolerance {TOLERANCE}")
    cos = expected[:3] @ expected[:3].T
    print(f"model card example (float64): cos(weather, sunny) = {cos[0, 1]:.4f}, "
          f"cos(weather, stadium) = {cos[0, 2]:.4f}, cos(sunny, stadium) = {cos[1, 2]:.4f}")
    failed = [i for i in range(len(inputs)) if error[i] > TOLERANCE]
    for i in failed:
        print(f"MISMATCH on text {i} ({inputs[i][:60]!r}...): max error {error[i]:.2e}")
    print("embedding check:", "passed" if not failed else f"{len(failed)} failures")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
