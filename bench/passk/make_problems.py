#!/usr/bin/env python3
"""Arithmetic word problems for esamp-passk: two or three steps (+, -, x, /), names, objects,
numbers and wording varied, each with its exact integer answer. Deterministic from --seed.
Writes JSON Lines: {"prompt": ..., "answer": <int>, "steps": <2 or 3>}.

Usage: bench/passk/make_problems.py --seed 1 --count 300 > problems.jsonl
Difficulty: --max-number bounds the counts that are added, taken away or started from;
--max-factor bounds multipliers and divisors; --three-step-share is the share of 3-step problems;
--operations all adds multiplication and division (boxes of n, shares, prices). The defaults
(add-subtract, numbers up to 5, two steps) are the difficulty calibrated for Gemma 3 270M with
esamp-passk's built-in few-shot prefix (bench/results/passk-gemma.md);
bench/passk/few-shot-all-operations.txt is a prefix for --operations all.
"""
import argparse
import json
import random
import sys

NAMES = [("Ana", "she"), ("Ben", "he"), ("Carla", "she"), ("Dev", "he"), ("Emma", "she"),
         ("Farid", "he"), ("Grace", "she"), ("Hugo", "he"), ("Ines", "she"), ("Jon", "he"),
         ("Kim", "she"), ("Leo", "he"), ("Maya", "she"), ("Noah", "he"), ("Olga", "she"),
         ("Pablo", "he"), ("Rosa", "she"), ("Sami", "he"), ("Tara", "she"), ("Victor", "he")]
# (plural, singular, edible)
ITEMS = [("apples", "apple", True), ("marbles", "marble", False), ("stickers", "sticker", False),
         ("cookies", "cookie", True), ("pencils", "pencil", False), ("books", "book", False),
         ("shells", "shell", False), ("stamps", "stamp", False), ("cards", "card", False),
         ("eggs", "egg", True), ("oranges", "orange", True), ("candies", "candy", True),
         ("beads", "bead", False), ("balloons", "balloon", False), ("muffins", "muffin", True),
         ("crayons", "crayon", False)]
CONTAINERS = [("boxes", "box"), ("bags", "bag"), ("packs", "pack"), ("jars", "jar"),
              ("baskets", "basket")]
OBJECT = {"she": "her", "he": "him"}
POSSESSIVE = {"she": "her", "he": "his"}


def cap(text):
    return text[0].upper() + text[1:]


class Problem:
    def __init__(self, rng, args):
        self.rng, self.args = rng, args
        self.name, self.pronoun = rng.choice(NAMES)
        self.friend = rng.choice([n for n, _ in NAMES if n != self.name])
        self.items, self.item, self.edible = rng.choice(ITEMS)
        self.containers, self.container = rng.choice(CONTAINERS)
        self.sentences, self.value, self.steps = [], 0, 0

    def number(self, low=2):
        return self.rng.randint(low, self.args.max_number)

    def factor(self):
        return self.rng.randint(2, self.args.max_factor)

    def say(self, sentence, value, steps):
        self.sentences.append(sentence)
        self.value, self.steps = value, self.steps + steps

    def opening(self, with_step):
        n, items, c, cs = self.name, self.items, self.container, self.containers
        if not with_step:
            a = self.number()
            self.say(self.rng.choice([f"{n} has {a} {items}.", f"{n} starts with {a} {items}.",
                                      f"There are {a} {items} on {n}'s desk."]), a, 0)
            return
        kind = self.rng.randrange(3)
        if kind == 2:
            a, b = self.number(), self.number()
            self.say(f"{n} collects {a} {items} in the morning and {b} {items} in the afternoon.",
                     a + b, 1)
            return
        a, b = self.factor(), self.factor()
        self.say(f"{n} has {a} {cs} of {items}, and each {c} holds {b} {items}." if kind == 0 else
                 f"{n} buys {a} {cs} of {items}. There are {b} {items} in each {c}.", a * b, 1)

    def middle(self):
        p, f = cap(self.pronoun), self.friend
        if self.value > 2 and self.rng.random() < 0.5:
            b = self.rng.randint(1, min(self.args.max_number, self.value - 1))
            items = self.item if b == 1 else self.items
            takes = [f"{p} gives {b} {items} to {f}.", f"{p} loses {b} of them.",
                     f"{p} sells {b} {items}.", f"{f} takes {b} of them.",
                     f"{p} uses {b} of them."]
            if self.edible:
                takes.append(f"{p} eats {b} of them.")
            self.say(self.rng.choice(takes), self.value - b, 1)
        else:
            b = self.number(1)
            items = self.item if b == 1 else self.items
            self.say(self.rng.choice([f"{p} buys {b} more.", f"{p} finds {b} more {items}.",
                                      f"{f} gives {OBJECT[self.pronoun]} {b} more {items}.",
                                      f"Then {self.pronoun} gets {b} more from {f}."]),
                     self.value + b, 1)

    def closing(self, with_step):
        """The question; False when no divisor fits (the caller draws again)."""
        n, p, items, c, cs = self.name, cap(self.pronoun), self.items, self.container, self.containers
        if not with_step:
            self.sentences.append(self.rng.choice([f"How many {items} does {n} have now?",
                                                   f"How many {items} does {n} have in the end?"]))
            return True
        if self.rng.random() < 0.5:
            divisors = [d for d in range(2, self.args.max_factor + 1) if self.value % d == 0]
            if not divisors:
                return False
            d = self.rng.choice(divisors)
            self.say(self.rng.choice([
                f"{p} shares them equally among {d} friends. How many {items} does each friend get?",
                f"{p} puts them equally into {d} {cs}. How many {items} go in each {c}?"]),
                self.value // d, 1)
        else:
            d = self.factor()
            self.say(self.rng.choice([
                f"Each {self.item} sells for {d} dollars. How many dollars are all "
                f"{POSSESSIVE[self.pronoun]} {items} worth?",
                f"{p} sells all of them for {d} dollars each. How many dollars does "
                f"{self.pronoun} get?"]), self.value * d, 1)
        return True


def make_problem(rng, args):
    steps = 3 if rng.random() < args.three_step_share else 2
    all_operations = args.operations == "all"
    while True:
        problem = Problem(rng, args)
        opening_step = all_operations and rng.random() < 0.5
        closing_step = all_operations and rng.random() < 0.5
        middle = steps - opening_step - closing_step
        problem.opening(opening_step)
        for _ in range(middle):
            problem.middle()
        if problem.closing(closing_step):
            assert problem.steps == steps
            return {"prompt": " ".join(problem.sentences), "answer": problem.value, "steps": steps}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--max-number", type=int, default=5)
    parser.add_argument("--max-factor", type=int, default=9)
    parser.add_argument("--three-step-share", type=float, default=0.0)
    parser.add_argument("--operations", choices=["all", "add-subtract"], default="add-subtract")
    parser.add_argument("--out", help="the JSONL file [stdout]")
    args = parser.parse_args()
    if args.count < 1 or args.max_number < 2 or args.max_factor < 2 or not (
            0.0 <= args.three_step_share <= 1.0):
        parser.error("--count >= 1, --max-number >= 2, --max-factor >= 2, "
                     "--three-step-share in [0, 1]")
    rng = random.Random(args.seed)
    out = open(args.out, "w") if args.out else sys.stdout
    for _ in range(args.count):
        out.write(json.dumps(make_problem(rng, args)) + "\n")
    if args.out:
        out.close()


if __name__ == "__main__":
    main()
