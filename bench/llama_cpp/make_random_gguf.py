#!/usr/bin/env python3
"""Writes a Llama-shaped GGUF with seeded random weights for the llama.cpp overhead benchmark.

About 1.1B parameters by default (hidden 2048, 16 layers, 32 query / 8 KV heads, FFN 8192,
vocab 32000), matrices in Q8_0 or F16, norms in F32, and a SentencePiece-style vocabulary of
placeholder pieces, so that llama.cpp loads and decodes it like a real model. The weights mean
nothing: the file exists to time a decode step of a realistic size. Never commit its output.

Needs numpy and the gguf package (pip install gguf).
"""
import argparse

import numpy as np
import gguf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", help="the .gguf file to write")
    parser.add_argument("--type", choices=["q8_0", "f16"], default="q8_0")
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--layers", type=int, default=16)
    parser.add_argument("--heads", type=int, default=32)
    parser.add_argument("--kv-heads", type=int, default=8)
    parser.add_argument("--ffn", type=int, default=8192)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--context", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    head_dim = args.hidden // args.heads
    kv_dim = args.kv_heads * head_dim
    matrix_type = (gguf.GGMLQuantizationType.Q8_0 if args.type == "q8_0"
                   else gguf.GGMLQuantizationType.F16)

    writer = gguf.GGUFWriter(args.output, "llama")
    writer.add_name(f"random llama {args.hidden}x{args.layers}")
    writer.add_context_length(args.context)
    writer.add_embedding_length(args.hidden)
    writer.add_block_count(args.layers)
    writer.add_feed_forward_length(args.ffn)
    writer.add_head_count(args.heads)
    writer.add_head_count_kv(args.kv_heads)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(10000.0)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0 if args.type == "q8_0"
                         else gguf.LlamaFileType.MOSTLY_F16)

    # <unk>, <s>, </s>, the 256 byte pieces, then placeholder words.
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    token_types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    token_types += [gguf.TokenType.BYTE] * 256
    tokens += [f"\u2581w{i}" for i in range(args.vocab - len(tokens))]
    token_types += [gguf.TokenType.NORMAL] * (args.vocab - len(token_types))
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores([-float(i) for i in range(args.vocab)])
    writer.add_token_types(token_types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)

    def matrix(name: str, rows: int, cols: int) -> None:
        values = (rng.standard_normal((rows, cols), dtype=np.float32) * 0.02).astype(np.float32)
        data = gguf.quants.quantize(values, matrix_type)
        writer.add_tensor(name, data, raw_shape=data.shape, raw_dtype=matrix_type)

    def norm(name: str) -> None:
        writer.add_tensor(name, np.ones(args.hidden, dtype=np.float32))

    matrix("token_embd.weight", args.vocab, args.hidden)
    for layer in range(args.layers):
        prefix = f"blk.{layer}."
        norm(prefix + "attn_norm.weight")
        matrix(prefix + "attn_q.weight", args.hidden, args.hidden)
        matrix(prefix + "attn_k.weight", kv_dim, args.hidden)
        matrix(prefix + "attn_v.weight", kv_dim, args.hidden)
        matrix(prefix + "attn_output.weight", args.hidden, args.hidden)
        norm(prefix + "ffn_norm.weight")
        matrix(prefix + "ffn_gate.weight", args.ffn, args.hidden)
        matrix(prefix + "ffn_up.weight", args.ffn, args.hidden)
        matrix(prefix + "ffn_down.weight", args.hidden, args.ffn)
    norm("output_norm.weight")
    matrix("output.weight", args.vocab, args.hidden)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


if __name__ == "__main__":
    main()
