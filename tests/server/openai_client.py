#!/usr/bin/env python3
"""esamp-server called by the official openai Python client: completions, n, streaming, and the
esamp extension through extra_body. Starts the server (argv[1]) on a free loopback port with
stories260K.gguf from ESAMP_MODEL_DIR, stops it with SIGTERM and checks that it exits 0."""
import math
import os
import re
import signal
import subprocess
import sys

import openai


def main() -> int:
    server_program = sys.argv[1]
    model_dir = os.environ.get("ESAMP_MODEL_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "esamp", "models")
    model = os.path.join(model_dir, "stories260K.gguf")
    server = subprocess.Popen(
        [server_program, "--model", model, "--port", "0", "--threads", "1"],
        stdout=subprocess.PIPE, text=True)
    try:
        first_line = server.stdout.readline()
        match = re.search(r":(\d+) \(parallel", first_line)
        assert match, f"esamp-server's first line: {first_line!r}"
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{match.group(1)}/v1",
                               api_key="unused", max_retries=0)

        models = client.models.list()
        assert [m.id for m in models.data] == ["stories260K.gguf"], models

        greedy = client.completions.create(model="stories260K.gguf", prompt="Once upon a time",
                                           max_tokens=16, temperature=0,
                                           extra_body={"esamp": {"beta": 0}})
        assert len(greedy.choices) == 1 and greedy.choices[0].text, greedy
        assert greedy.usage.completion_tokens == 16, greedy.usage

        four = client.completions.create(model="stories260K.gguf", prompt="Once upon a time",
                                         max_tokens=24, n=4, seed=5, temperature=1.0,
                                         extra_body={"esamp": {"beta": 0.5,
                                                               "warm_start": False}})
        assert sorted(c.index for c in four.choices) == [0, 1, 2, 3], four
        assert len({c.text for c in four.choices}) > 1, four
        esamp = four.model_extra["esamp"]
        assert esamp["beta"] == 0.5 and esamp["warm_start"] is False, esamp
        assert esamp["rows_mixed"] > 0 and math.isfinite(esamp["mean_loss"]), esamp

        stream = client.completions.create(model="stories260K.gguf", prompt="Once upon a time",
                                           max_tokens=24, n=4, seed=5, temperature=1.0,
                                           stream=True,
                                           extra_body={"esamp": {"beta": 0.5,
                                                                 "warm_start": False}})
        texts = [""] * 4
        chunks = 0
        for chunk in stream:
            for choice in chunk.choices:
                texts[choice.index] += choice.text
                chunks += 1
        assert texts == [c.text for c in sorted(four.choices, key=lambda c: c.index)], texts
        assert chunks >= four.usage.completion_tokens, (chunks, four.usage)

        try:
            client.completions.create(model="stories260K.gguf", prompt="x", max_tokens=4,
                                      extra_body={"esamp": {"beta": -1}})
            raise AssertionError("a negative beta was accepted")
        except openai.BadRequestError as e:
            assert "esamp.beta" in str(e), e

        try:
            client.chat.completions.create(model="stories260K.gguf",
                                           messages=[{"role": "user", "content": "Hi"}])
            raise AssertionError("chat without a chat template was accepted")
        except openai.BadRequestError as e:
            assert "no chat template" in str(e), e
    finally:
        server.send_signal(signal.SIGTERM)
        status = server.wait(timeout=60)
    assert status == 0, f"esamp-server exited with {status}"
    print("openai client: completions, n, streaming, extra_body esamp: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
