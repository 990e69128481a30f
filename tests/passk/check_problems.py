#!/usr/bin/env python3
"""Checks bench/passk/make_problems.py: every problem's answer recomputed from its text alone (a
reading of the sentences by keywords, written apart from the generator's templates), its step
count, positive whole intermediate counts, and the same problems again from the same seed.
Usage: check_problems.py PATH/TO/make_problems.py"""
import json
import re
import subprocess
import sys


def generate(script, *args):
    out = subprocess.run([sys.executable, script, *args], check=True, capture_output=True,
                         text=True).stdout
    return [json.loads(line) for line in out.splitlines()]


def solve(prompt):
    """(answer, steps) read from the text, or raises AssertionError."""
    sentences = re.split(r"(?<=[.?])\s+", prompt)
    assert sentences[-1].startswith("How many") and sentences[-1].endswith("?"), prompt
    value, steps = None, 0
    for sentence in sentences:
        numbers = [int(n) for n in re.findall(r"\d+", sentence)]
        words = set(re.findall(r"[a-z']+", sentence.lower()))
        if value is None:  # the opening: how many there are at first
            if len(numbers) == 1:
                value = numbers[0]
            elif "each" in words:
                value, steps = numbers[0] * numbers[1], 1
            elif {"morning", "afternoon"} <= words:
                value, steps = numbers[0] + numbers[1], 1
            else:
                raise AssertionError(f"opening not understood: {sentence}")
            continue
        if not numbers:
            assert sentence.startswith("How many"), sentence
            continue
        assert len(numbers) == 1, sentence
        n = numbers[0]
        if "equally" in words:
            assert value % n == 0, f"{value} does not split into {n}: {prompt}"
            value //= n
        elif words & {"dollars", "each"}:  # a price each, or a count in each container
            value *= n
        elif "more" in words:
            value += n
        elif words & {"gives", "loses", "sells", "takes", "uses", "eats"}:
            value -= n
        else:
            raise AssertionError(f"step not understood: {sentence}")
        steps += 1
        assert value > 0, f"count {value} after '{sentence}': {prompt}"
    return value, steps


def main():
    script = sys.argv[1]
    checked = 0
    for args in (["--seed", "1", "--count", "400", "--operations", "all", "--max-number", "20",
                  "--three-step-share", "0.5"],
                 ["--seed", "7", "--count", "300", "--operations", "all", "--max-number", "60",
                  "--max-factor", "12", "--three-step-share", "0.5"],
                 ["--seed", "3", "--count", "200", "--operations", "all", "--three-step-share", "1"],
                 ["--seed", "4", "--count", "200", "--operations", "all", "--three-step-share", "0"],
                 ["--seed", "5", "--count", "200"],  # the defaults: add-subtract, two steps
                 ["--seed", "6", "--count", "200", "--three-step-share", "1"]):
        problems = generate(script, *args)
        assert len(problems) == int(args[3]), args
        assert problems == generate(script, *args), f"not deterministic: {args}"
        for problem in problems:
            answer, steps = solve(problem["prompt"])
            assert answer == problem["answer"], f"{answer} != {problem['answer']}: {problem}"
            assert steps == problem["steps"], f"{steps} steps read: {problem}"
            assert isinstance(problem["answer"], int)
        if "all" not in args:
            for p in problems:
                assert not re.search(r"each|equally|dollars|morning", p["prompt"]), p
        share = float(args[args.index("--three-step-share") + 1]) if (
            "--three-step-share" in args) else 0.0
        steps = {p["steps"] for p in problems}
        assert steps == ({3} if share == 1 else {2} if share == 0 else {2, 3}), (args, steps)
        assert len({p["prompt"] for p in problems}) > 0.95 * len(problems), "few distinct prompts"
        checked += len(problems)
    assert generate(script, "--seed", "1", "--count", "5") != generate(script, "--seed", "2",
                                                                      "--count", "5")
    # The check is not vacuous: with a number of the text changed, the stored answer must fail.
    caught = 0
    problems = generate(script, "--seed", "1", "--count", "50", "--operations", "all")
    for problem in problems:
        changed = re.sub(r"\d+", lambda m: str(int(m.group()) + 1), problem["prompt"], count=1)
        try:
            caught += solve(changed)[0] != problem["answer"]
        except AssertionError:
            caught += 1
    assert caught == len(problems), f"only {caught} of {len(problems)} changed texts caught"
    print(f"{checked} problems: answers and step counts recomputed from the text")


if __name__ == "__main__":
    main()
