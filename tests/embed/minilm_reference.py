"""An independent float64 numpy re-implementation of all-MiniLM-L6-v2, the reference that the C++
encoder (examples/embed) is checked against. Token ids come from the HF `tokenizers` package reading
the same tokenizer.json; the weights from model.safetensors, parsed here from its documented layout.

As a program: reads one JSON string per line from stdin and prints one JSON array per line, the
text's embedding (384 floats, mean-pooled, L2-normalised), or with --tokens its token ids.
  python3 tests/embed/minilm_reference.py [--dir DIR] [--tokens] < texts.jsonl
"""

import argparse
import json
import math
import os
import pathlib
import struct
import sys

import numpy as np
from tokenizers import Tokenizer

MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model (sentence_bert_config.json)


def default_dir():
    if os.environ.get("ESAMP_EMBEDDER_DIR"):
        return os.environ["ESAMP_EMBEDDER_DIR"]
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(cache, "esamp", "all-minilm-l6-v2")


def read_safetensors(path):
    """name -> float64 array, from the format: u64 header length, JSON header, raw little-endian data."""
    data = pathlib.Path(path).read_bytes()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_len])
    base = 8 + header_len
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__" or info["dtype"] != "F32":
            continue
        begin, end = info["data_offsets"]
        array = np.frombuffer(data[base + begin : base + end], dtype="<f4")
        tensors[name] = array.reshape(info["shape"]).astype(np.float64)
    return tensors


def load_tokenizer(directory):
    tokenizer = Tokenizer.from_file(os.path.join(directory, "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(MAX_TOKENS)
    return tokenizer


class Reference:
    def __init__(self, directory):
        config = json.loads(pathlib.Path(directory, "config.json").read_text())
        self.layers = config["num_hidden_layers"]
        self.heads = config["num_attention_heads"]
        self.eps = config["layer_norm_eps"]
        self.w = read_safetensors(os.path.join(directory, "model.safetensors"))
        self.tokenizer = load_tokenizer(directory)

    def tokenize(self, text):
        return self.tokenizer.encode(text).ids

    def _layer_norm(self, x, prefix):
        mean = x.mean(axis=-1, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        return (x - mean) / np.sqrt(var + self.eps) * self.w[prefix + ".weight"] + self.w[prefix + ".bias"]

    def _dense(self, x, prefix):
        return x @ self.w[prefix + ".weight"].T + self.w[prefix + ".bias"]

    def embed_ids(self, ids):
        w = self.w
        n = len(ids)
        x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = self._layer_norm(x, "embeddings.LayerNorm")
        hidden = x.shape[1]
        head_dim = hidden // self.heads
        erf = np.vectorize(math.erf)
        for i in range(self.layers):
            p = f"encoder.layer.{i}."
            q = self._dense(x, p + "attention.self.query").reshape(n, self.heads, head_dim).transpose(1, 0, 2)
            k = self._dense(x, p + "attention.self.key").reshape(n, self.heads, head_dim).transpose(1, 0, 2)
            v = self._dense(x, p + "attention.self.value").reshape(n, self.heads, head_dim).transpose(1, 0, 2)
            scores = q @ k.transpose(0, 2, 1) / math.sqrt(head_dim)
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(1, 0, 2).reshape(n, hidden)
            x = self._layer_norm(x + self._dense(context, p + "attention.output.dense"), p + "attention.output.LayerNorm")
            inner = self._dense(x, p + "intermediate.dense")
            inner = 0.5 * inner * (1.0 + erf(inner / math.sqrt(2.0)))
            x = self._layer_norm(x + self._dense(inner, p + "output.dense"), p + "output.LayerNorm")
        pooled = x.mean(axis=0)
        return pooled / np.linalg.norm(pooled)

    def embed(self, text):
        return self.embed_ids(self.tokenize(text))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", default=default_dir(), help="the encoder's folder (default: %(default)s)")
    parser.add_argument("--tokens", action="store_true", help="print token ids instead of embeddings")
    args = parser.parse_args()
    if args.tokens:
        tokenizer = load_tokenizer(args.dir)
        for line in sys.stdin:
            print(json.dumps(tokenizer.encode(json.loads(line)).ids))
        return
    reference = Reference(args.dir)
    for line in sys.stdin:
        print(json.dumps([float(v) for v in reference.embed(json.loads(line))]))


if __name__ == "__main__":
    main()
