#!/usr/bin/env python3
"""Reads esamp-loops traces (one JSON line per sample) and prints what bench/results/gemma-loops.md
records.

  loops_analyze.py summary TRACE...           one row per trace: perplexity, seq-rep-4, loops at
                                              the end, relevance, semantic Vendi, and the trace's
                                              means (entropies, distiller error, copy probability)
  loops_analyze.py match --base T1,T2,... TRACE...
                                              each TRACE against the temperature curve of the base
                                              traces, interpolated per prompt to its perplexity:
                                              differences with 95% t-intervals over prompts
  loops_analyze.py age TRACE...               per prompt in the order run (the warm start's age):
                                              seq-rep-4, relevance, immediate token repeats, the
                                              distiller's a, and the push on the copy token and on
                                              the current token (p_copy mixed − rescaled-only, and
                                              the centred push logits)
  loops_analyze.py onset TRACE                the diagnostics around the start of each loop
  loops_analyze.py show TRACE PROMPT SAMPLE   one sample token by token

Definitions as the project's (include/esamp/metrics.hpp, DESIGN.md §5): words split on whitespace;
seq-rep-4 pooled over the samples of a prompt (repeats of an earlier 4-gram of the same sample over
all 4-grams); a sample ends in a loop when its last max(3p, 12) words repeat with some period p;
perplexity of a prompt's pooled tokens (exp of their mean negative log-likelihood under the base
model); relevance: MiniLM cosine of prompt and continuation; semantic Vendi: exp of the entropy of
the eigenvalues of K/n, K the cosine kernel of the continuations' MiniLM embeddings. Every figure is
a mean over prompts (the units), ± the 95% t half-width. Embeddings come from esamp-embed
(ESAMP_EMBED, default build/rel/examples/embed/esamp-embed), cached beside the trace.
"""

import json
import math
import os
import subprocess
import sys

import numpy as np

EMBED = os.environ.get("ESAMP_EMBED", "build/rel/examples/embed/esamp-embed")
T975 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26,
        10: 2.23, 11: 2.20, 12: 2.18, 13: 2.16, 14: 2.14, 15: 2.13, 16: 2.12, 20: 2.09, 30: 2.04}


def t975(df):
    keys = sorted(k for k in T975 if k <= df)
    return T975[keys[-1]] if keys else float("nan")


def mean_ci(values):
    v = np.asarray([x for x in values if not math.isnan(x)], dtype=float)
    if len(v) == 0:
        return float("nan"), float("nan")
    if len(v) == 1:
        return float(v[0]), float("nan")
    return float(v.mean()), t975(len(v) - 1) * float(v.std(ddof=1)) / math.sqrt(len(v))


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def embed(path, samples):
    """Unit-norm MiniLM embeddings of each sample's continuation and of each prompt."""
    cache = path + ".emb.npz"
    prompts = sorted({s["prompt_index"]: s["prompt"] for s in samples}.items())
    texts = [s["text"] for s in samples] + [p for _, p in prompts]
    if os.path.exists(cache) and os.path.getmtime(cache) >= os.path.getmtime(path):
        e = np.load(cache)["e"]
    else:
        run = subprocess.run([EMBED], input="\n".join(json.dumps(t) for t in texts) + "\n",
                             capture_output=True, text=True, check=True)
        e = np.array([json.loads(line) for line in run.stdout.splitlines()], dtype=float)
        np.savez(cache, e=e)
    n = len(samples)
    return e[:n], {index: e[n + k] for k, (index, _) in enumerate(prompts)}


def seq_rep(word_lists, n=4):
    ngrams = repeats = 0
    for words in word_lists:
        seen = set()
        for i in range(len(words) - n + 1):
            g = tuple(words[i:i + n])
            ngrams += 1
            repeats += g in seen
            seen.add(g)
    return repeats / ngrams if ngrams else 0.0


def ends_in_loop(words, min_words=12):
    n = len(words)
    for p in range(1, n // 3 + 1):
        span = max(3 * p, min_words)
        if span > n:
            continue
        if all(words[i] == words[i - p] for i in range(n - span + p, n)):
            return True
    return False


def vendi(e):
    if len(e) == 0:
        return float("nan")
    lam = np.linalg.eigvalsh(e @ e.T / len(e))
    lam = lam[lam > 1e-12]
    return float(np.exp(-(lam * np.log(lam)).sum()))


def units(path):
    """Per prompt (by its text: traces may run the prompts in other orders): the guardrails,
    diversity and perplexity of its samples, and its index in the trace (the warm start's age)."""
    samples = load(path)
    e, prompt_e = embed(path, samples)
    by_prompt = {}
    for k, s in enumerate(samples):
        by_prompt.setdefault(s["prompt_index"], []).append(k)
    out = {}
    for p, ks in sorted(by_prompt.items()):
        lp = [x for k in ks for x in samples[k]["lp_base"]]
        words = [samples[k]["text"].split() for k in ks]
        nonempty = [k for k in ks if samples[k]["text"].strip()]
        out[samples[ks[0]]["prompt"]] = {
            "index": p,
            "ppl": math.exp(-float(np.mean(lp))) if lp else float("nan"),
            "rep4": seq_rep(words),
            "loop_end": float(np.mean([ends_in_loop(w) for w in words])),
            "relevance": float(np.mean([e[k] @ prompt_e[p] for k in nonempty])),
            "vendi": vendi(e[nonempty]),
        }
    return samples, out


def column_mean(samples, name):
    """The mean over mixed tokens (over every token with a value when none is mixed: β = 0)."""
    any_mixed = any(any(s["mixed"]) for s in samples)
    v = [x for s in samples for x, m in zip(s[name], s["mixed"])
         if (m or not any_mixed) and x is not None and not math.isnan(x)]
    return float(np.mean(v)) if v else float("nan")


def label(path):
    return os.path.basename(path).removesuffix(".jsonl")


def summary(paths):
    print("| trace | perplexity | median sample ppl | seq-rep-4 | loop at end | relevance | "
          "sem. Vendi | H base | H sharpened | H mixed | s | a | ‖e⊥‖/‖h‖ | rel. err | "
          "cos(ŷ,y) | p copy base / sharp / mixed | seen mass base / sharp / mixed |")
    print("|---|" + "---:|" * 16)
    for path in paths:
        samples, u = units(path)
        cells = []
        for key, fmt in (("ppl", "{:.2f}"), ("rep4", "{:.3f}"), ("loop_end", "{:.2f}"),
                         ("relevance", "{:.3f}"), ("vendi", "{:.2f}")):
            m, h = mean_ci([x[key] for x in u.values()])
            cells.append((fmt + " ± " + fmt).format(m, h))
        ppl_samples = [math.exp(-np.mean(s["lp_base"])) for s in samples if s["lp_base"]]
        cells.insert(1, "{:.2f}".format(float(np.median(ppl_samples))))
        for name in ("ent_base", "ent_sharp", "ent_mix", "s", "a", "e_perp", "rel_err",
                     "cos_target"):
            cells.append("{:.3f}".format(column_mean(samples, name)))
        cells.append(" / ".join("{:.3f}".format(column_mean(samples, n))
                                for n in ("p_copy_base", "p_copy_sharp", "p_copy_mix")))
        cells.append(" / ".join("{:.3f}".format(column_mean(samples, n))
                                for n in ("seen_base", "seen_sharp", "seen_mix")))
        print("| {} | {} |".format(label(path), " | ".join(cells)))


def interpolate(curve, ppl):
    """The base curve's metrics at perplexity ppl (linear in log perplexity, clamped)."""
    pts = sorted(curve, key=lambda x: x["ppl"])
    xs = np.log([x["ppl"] for x in pts])
    return {k: float(np.interp(math.log(ppl), xs, [x[k] for x in pts]))
            for k in ("rep4", "loop_end", "relevance", "vendi")}, (
        ppl < pts[0]["ppl"] or ppl > pts[-1]["ppl"])


def match(base_paths, paths):
    base = [units(p)[1] for p in base_paths]
    print("| trace | perplexity | Δ sem. Vendi | Δ seq-rep-4 | Δ loop at end | Δ relevance | "
          "units outside the curve |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for path in paths:
        _, u = units(path)
        deltas = {k: [] for k in ("vendi", "rep4", "loop_end", "relevance")}
        outside = 0
        for p, x in u.items():
            ref, out = interpolate([b[p] for b in base if p in b], x["ppl"])
            outside += out
            for k in deltas:
                deltas[k].append(x[k] - ref[k])
        ppl = mean_ci([x["ppl"] for x in u.values()])[0]
        cells = []
        for k in ("vendi", "rep4", "loop_end", "relevance"):
            m, h = mean_ci(deltas[k])
            cells.append("{:+.3f} [{:+.3f}, {:+.3f}]".format(m, m - h, m + h))
        print("| {} | {:.2f} | {} | {}/{} |".format(label(path), ppl, " | ".join(cells), outside,
                                                   len(u)))


def mean_of(values):
    v = [x for x in values if x is not None and not math.isnan(x)]
    return float(np.mean(v)) if v else float("nan")


def age(path):
    samples, u = units(path)
    print("{}: by the prompt's place in the run".format(label(path)))
    print("| place | seq-rep-4 | relevance | immediate repeats | a | s | Δp copy (push) | "
          "push logit on copy | push logit on current token |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for unit in sorted(u.values(), key=lambda x: x["index"]):
        p = unit["index"]
        ss = [s for s in samples if s["prompt_index"] == p]
        tokens = sum(len(s["token"]) - 1 for s in ss)
        repeats = sum(s["token"][k] == s["token"][k - 1] for s in ss
                      for k in range(1, len(s["token"])))
        mixed = [(s, k) for s in ss for k in range(len(s["token"])) if s["mixed"][k]]
        col = lambda name: mean_of([s[name][k] for s, k in mixed] if name in ss[0] else [])
        dcopy = mean_of([s["p_copy_mix"][k] - s["p_copy_sharp"][k] for s, k in mixed
                         if s["copy_token"][k] >= 0])
        print("| {} | {:.3f} | {:.3f} | {:.3f} | {:.3f} | {:.3f} | {:+.3f} | {:+.2f} | {:+.2f} |"
              .format(p, unit["rep4"], unit["relevance"], repeats / max(tokens, 1), col("a"),
                      col("s"), dcopy, col("push_copy"), col("push_self")))


def token_repeats(tokens, n=4):
    """rep[k] = 1 when the token n-gram ending at k occurred earlier in the sample."""
    seen, rep = set(), []
    for k in range(len(tokens)):
        g = tuple(tokens[max(0, k - n + 1):k + 1])
        rep.append(1 if len(g) == n and g in seen else 0)
        if len(g) == n:
            seen.add(g)
    return rep


def loop_onset(rep, run=8):
    """The first token of the first run of `run` repeated tokens (the loop's start), or None."""
    count = 0
    for k, r in enumerate(rep):
        count = count + 1 if r else 0
        if count == run:
            return k - run + 1
    return None


def onset(path):
    samples = load(path)
    names = ("rel_err", "cos_target", "a", "e_perp", "s", "ent_base", "ent_sharp", "ent_mix", "p_copy_base",
             "p_copy_sharp", "p_copy_mix", "push_copy", "push_self", "seen_base", "seen_mix", "rank_mix",
             "lp_base")
    windows = ((-24, -12), (-12, -4), (-4, 0), (0, 8), (8, 24), (24, 96))
    rows = {w: {n: [] for n in names} for w in windows}
    never = {n: [] for n in names}
    starts, looped = [], 0
    rep_split = {0: {n: [] for n in names}, 1: {n: [] for n in names}}
    for s in samples:
        rep = token_repeats(s["token"])
        start = loop_onset(rep)
        for k in range(1, len(rep)):
            if not s["mixed"][k]:
                continue
            for n in names:
                v = s[n][k]
                if v is not None and not (isinstance(v, float) and math.isnan(v)):
                    rep_split[rep[k]][n].append(v)
        if start is None:
            for k in range(1, len(rep)):
                for n in names:
                    v = s[n][k]
                    if v is not None and not (isinstance(v, float) and math.isnan(v)):
                        never[n].append(v)
            continue
        looped += 1
        starts.append(start)
        for w in windows:
            for k in range(max(1, start + w[0]), min(len(rep), start + w[1])):
                for n in names:
                    v = s[n][k]
                    if v is not None and not (isinstance(v, float) and math.isnan(v)):
                        rows[w][n].append(v)
    print("{}: {} of {} samples loop (a run of 8 tokens each closing a repeated token 4-gram); "
          "onset token median {}, quartiles {}".format(
              label(path), looped, len(samples), np.median(starts) if starts else "-",
              np.percentile(starts, [25, 75]).tolist() if starts else "-"))
    print("| window (tokens from onset) | n | " + " | ".join(names) + " |")
    print("|---|---:|" + "---:|" * len(names))
    for w in windows:
        n = len(rows[w]["a"])
        print("| [{}, {}) | {} | ".format(*w, n) + " | ".join(
            "{:.3f}".format(np.mean(rows[w][x])) if rows[w][x] else "-" for x in names) + " |")
    print("| samples that never loop | {} | ".format(len(never["a"])) + " | ".join(
        "{:.3f}".format(np.mean(never[x])) if never[x] else "-" for x in names) + " |")
    for r in (0, 1):
        print("| mixed tokens {} a repeated 4-gram | {} | ".format(
            "closing" if r else "not closing", len(rep_split[r]["a"])) + " | ".join(
            "{:.3f}".format(np.mean(rep_split[r][x])) if rep_split[r][x] else "-"
            for x in names) + " |")


def show(path, prompt, sample):
    s = next(x for x in load(path) if x["prompt_index"] == prompt and x["sample"] == sample)
    rep = token_repeats(s["token"])
    print(s["prompt"] + "|" + s["text"])
    print("k  rep mixed piece            rel_err  a      s      e_perp H_base H_mix  "
          "rank_b rank_m p_copy_b p_copy_m")
    for k, piece in enumerate(s["pieces"]):
        def f(name):
            v = s[name][k]
            return float("nan") if v is None else v
        print("{:<3}{:<4}{:<6}{:<17}{:<9.3f}{:<7.3f}{:<7.3f}{:<7.3f}{:<7.2f}{:<7.2f}{:<7}{:<7}"
              "{:<9.3f}{:<9.3f}".format(k, rep[k], s["mixed"][k], json.dumps(piece)[:16],
                                        f("rel_err"), f("a"), f("s"), f("e_perp"),
                                        f("ent_base"), f("ent_mix"), s["rank_base"][k],
                                        s["rank_mix"][k], f("p_copy_base"), f("p_copy_mix")))


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    if argv[1] == "summary":
        summary(argv[2:])
    elif argv[1] == "match" and argv[2] == "--base":
        match(argv[3].split(","), argv[4:])
    elif argv[1] == "age":
        for path in argv[2:]:
            age(path)
    elif argv[1] == "onset":
        for path in argv[2:]:
            onset(path)
    elif argv[1] == "show":
        show(argv[2], int(argv[3]), int(argv[4]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
