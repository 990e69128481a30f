"""Checks that the C++ WordPiece tokenizer (esamp-embed --tokens) gives the same token ids as the HF
`tokenizers` package on the same tokenizer.json, with the encoder's truncation to 256 tokens:
  1. on 1,200 varied strings (hand-picked edge cases, then random mixes of words, punctuation,
     accents, combining marks, CJK, kana, Hangul, Greek, Cyrillic, digits, emoji, whitespace and
     control characters, unknown and >100-character words, and texts past the truncation);
  2. on every code point c, as "a" + c + "b".
HF's tokenizers use older Unicode tables than Python's unicodedata (Unicode 14), from which the C++
tables are generated, so (2) differs on code points assigned or re-categorised since; the check
prints them and fails when any falls in the blocks that real text uses (SCRIPT_BLOCKS).

  python3 tests/embed/check_tokenizer.py path/to/esamp-embed
"""

import collections
import json
import random
import subprocess
import sys
import unicodedata

from minilm_reference import default_dir, load_tokenizer

# Latin, IPA, combining diacritics, Greek, Cyrillic, Armenian, Hebrew; Latin/Greek extended; general
# punctuation, currency, letterlike symbols, arrows, math; CJK punctuation, kana; CJK ideographs;
# Hangul; fullwidth forms; emoji.
SCRIPT_BLOCKS = [(0x0000, 0x05FF), (0x1E00, 0x1FFF), (0x2000, 0x22FF), (0x3000, 0x30FF),
                 (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0xFF00, 0xFFEF), (0x1F300, 0x1FAFF)]
COUNT = 1200

EDGE_CASES = [
    "", " ", "   ", "\t\n\r", "\u00a0\u3000\u2028", "Hello, world!", "The weather is lovely today.",
    "It's so sunny outside!", "don't won't can't", "U.S.A. e.g. i.e.", "café naïve résumé",
    "ÅÄÖ åäö ØÆ", "İstanbul", "Straße", "ΑΣ ας Σίσυφος", "Москва́", "東京タワー", "北京欢迎你",
    "한국어 텍스트", "12345 3.14159 -2e10 1,000,000", "$100 €50 £3 ¥9", "a" * 101, "b" * 100,
    "supercalifragilisticexpialidocious" * 4, "[CLS] hi [SEP]", "[MASK]", "[mask]", "x[UNK]y",
    "[PAD][SEP]", "e\u0301", "\u0000x\u0000", "\ufffd", "a\u200db", "👍🏽 🎉", "naïve\u0308",
    "http://example.org/a?b=c&d=e", "email@example.com", "(parenthesised) [bracketed] {braced}",
    "«guillemets» “quotes” ‘single’", "em—dash en–dash", "ellipsis…", "x" * 30 + "##" + "y" * 30,
    "##", "###", "##ing", "\x7f\x01\x1f", "\u00ad", "ﬁ ligature", "Ｆｕｌｌｗｉｄｔｈ", "ǅ ǈ ǋ",
    "word " * 300, "中" * 300,
]


def pools():
    def chars(*ranges):
        return [chr(c) for a, b in ranges for c in range(a, b + 1) if unicodedata.category(chr(c)) != "Cn"]
    return {
        "ascii": chars((0x20, 0x7E)),
        "latin": chars((0xA0, 0x24F), (0x1E00, 0x1EFF)),
        "marks": chars((0x300, 0x36F)),
        "greek_cyrillic": chars((0x370, 0x3FF), (0x400, 0x4FF)),
        "cjk": chars((0x4E00, 0x4FFF), (0x3000, 0x303F)),
        "kana": chars((0x3040, 0x30FF)),
        "hangul": chars((0xAC00, 0xAD00)),
        "punctuation": chars((0x2000, 0x206F)),
        "symbols": chars((0x20A0, 0x20BF), (0x2100, 0x214F), (0x2190, 0x21FF), (0x2200, 0x22FF)),
        "emoji": chars((0x1F300, 0x1F64F), (0x1F900, 0x1F9FF)),
        "space_control": [" ", "\t", "\n", "\r", "\x0b", "\x0c", "\x00", "\x85", "\xa0", "\u3000",
                          "\u200b", "\ufeff", "\ufffd", "\x1c"],
    }


def varied_strings(vocab_words):
    rng = random.Random(20261201)
    char_pools = pools()
    names = list(char_pools)
    out = list(EDGE_CASES)
    while len(out) < COUNT:
        kind = rng.random()
        if kind < 0.3:  # words from the vocabulary, with punctuation and case changes
            words = [rng.choice(vocab_words) for _ in range(rng.randint(1, 40))]
            words = [w.capitalize() if rng.random() < 0.3 else w for w in words]
            sep = [" ", " ", " ", ", ", ". ", "! ", "-", "'", "\n"]
            out.append("".join(w + rng.choice(sep) for w in words))
        elif kind < 0.45:  # unknown and long words
            length = rng.choice([5, 20, 60, 99, 100, 101, 150, 300])
            out.append(" ".join("".join(rng.choice("abcdefghijklmnopqrstuvwxyzé") for _ in range(length))
                                for _ in range(rng.randint(1, 3))))
        elif kind < 0.5:  # past the 256-token truncation
            out.append(" ".join(rng.choice(vocab_words) for _ in range(rng.randint(250, 600))))
        else:  # random mixes of character pools
            chosen = rng.sample(names, rng.randint(1, 4))
            out.append("".join(rng.choice(char_pools[rng.choice(chosen)]) for _ in range(rng.randint(0, 120))))
    return out


def cpp_tokens(binary, texts):
    data = "".join(json.dumps(t) + "\n" for t in texts)
    run = subprocess.run([binary, "--tokens", "--dir", default_dir()], input=data.encode(),
                         capture_output=True, check=False)
    if run.returncode != 0:
        sys.exit(f"{binary} --tokens failed ({run.returncode}): {run.stderr.decode()}")
    lines = run.stdout.decode().splitlines()
    if len(lines) != len(texts):
        sys.exit(f"{binary} --tokens printed {len(lines)} lines for {len(texts)} texts")
    return [json.loads(line) for line in lines]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    binary = sys.argv[1]
    tokenizer = load_tokenizer(default_dir())
    vocab_words = sorted(w for w in tokenizer.get_vocab() if w.isalpha())
    failures = 0

    texts = varied_strings(vocab_words)
    expected = [e.ids for e in tokenizer.encode_batch(texts)]
    got = cpp_tokens(binary, texts)
    mismatched = [i for i in range(len(texts)) if got[i] != expected[i]]
    for i in mismatched[:10]:
        print(f"MISMATCH on {texts[i]!r}:\n  C++ {got[i]}\n  HF  {expected[i]}")
    truncated = sum(len(e) == 256 for e in expected)
    unknown = sum(100 in e for e in expected)
    print(f"varied strings: {len(texts) - len(mismatched)} of {len(texts)} equal "
          f"({truncated} truncated to 256 tokens, {unknown} with [UNK])")
    failures += len(mismatched)

    codes = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    probes = ["a" + chr(c) + "b" for c in codes]
    expected = [e.ids for e in tokenizer.encode_batch(probes)]
    got = cpp_tokens(binary, probes)
    differing = [c for c, g, e in zip(codes, got, expected) if g != e]
    categories = collections.Counter(unicodedata.category(chr(c)) for c in differing)
    print(f"code points: {len(codes) - len(differing)} of {len(codes)} equal; {len(differing)} differ "
          f"by Unicode version (categories under Unicode {unicodedata.unidata_version}: {dict(categories)})")
    in_scripts = [c for c in differing if any(a <= c <= b for a, b in SCRIPT_BLOCKS)]
    for c in in_scripts:
        print(f"MISMATCH on U+{c:04X} {unicodedata.name(chr(c), '?')} in a script block")
    failures += len(in_scripts)

    print("tokenizer check:", "passed" if failures == 0 else f"{failures} failures")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
