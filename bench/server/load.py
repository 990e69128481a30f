#!/usr/bin/env python3
"""Load generator for OpenAI-compatible completion servers (esamp-server, llama-server), standard
library only, loopback only, bounded in requests and in time.

For each concurrency in --clients, that many clients send streamed completions (n samples of
--max-tokens each, prompts from --prompts in turn) until --requests have been sent or --seconds
have passed; what is in flight then is waited for, never dropped. Every request sends temperature 1
and llama-server's default filters (top-k 40, top-p 0.95, min-p 0.05), so that servers with other
defaults do the same sampling work (--extra overrides them). A request is n samples: with
--split-n they go as n requests of n = 1 sent at once (for servers that refuse n > 1). Prints a
markdown table: completed requests/s, generated tokens/s, time to first token and per-token latency
(p50, p99), errors, requests lost, and the server's resident memory before and after (--pid, or
the server started with --start). Exits 1 when a request failed or was lost.

  load.py --url http://127.0.0.1:8080 --clients 1,4,16 --pid 1234
  load.py --start esamp-server --model M.gguf --port 0 ...   (esamp-server: its port is read from
                                                              the first line it prints)
"""
import argparse
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse


def percentile(values, q):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def resident_mib(pid):
    if pid is None:
        return float("nan")
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class Totals:
    def __init__(self):
        self.lock = threading.Lock()
        self.sent = self.completed = self.errors = self.tokens = 0
        self.first_token = []  # seconds, per sample
        self.token_gaps = []  # seconds between a sample's tokens
        self.error_messages = []


def stream_completion(host, port, body, timeout):
    """One streamed request; returns (tokens, first-token times, token gaps)."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    start = time.monotonic()
    connection.request("POST", "/v1/completions", json.dumps(body),
                       {"Content-Type": "application/json"})
    response = connection.getresponse()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}: {response.read()[:200]!r}")
    n = body.get("n", 1)
    events = [0] * n
    last = [None] * n
    finished = [False] * n
    first, gaps = [], []
    done = False
    while True:
        line = response.readline()
        if not line:
            break
        line = line.strip()
        if not line.startswith(b"data: "):
            continue
        data = line[6:]
        if data == b"[DONE]":
            done = True
            break
        chunk = json.loads(data)
        if "error" in chunk:
            raise RuntimeError(f"error event: {chunk['error']}")
        now = time.monotonic()
        for choice in chunk.get("choices", []):
            i = choice.get("index", 0)
            if last[i] is None:
                first.append(now - start)
            else:
                gaps.append(now - last[i])
            last[i] = now
            # Tokens are counted as text events (one per token on esamp-server and llama-server;
            # a token that completes no character yet is not counted): llama-server's usage counts
            # one choice only when n > 1.
            if choice.get("text") or choice.get("delta", {}).get("content"):
                events[i] += 1
            finished[i] = finished[i] or choice.get("finish_reason") is not None
    connection.close()
    if not done and not all(finished):  # some servers end the stream without [DONE]
        raise RuntimeError("the stream ended before every choice finished")
    return sum(events), first, gaps


def client(args, host, port, prompts, totals, deadline, offset):
    k = offset
    while True:
        with totals.lock:
            if totals.sent >= args.requests or time.monotonic() >= deadline:
                return
            totals.sent += 1
        prompt = prompts[k % len(prompts)]
        k += 1
        # llama-server's own defaults for the filters, sent explicitly: a server that fills in none
        # (OpenAI's defaults, esamp-server's) would otherwise sample the whole vocabulary.
        body = {"prompt": prompt, "max_tokens": args.max_tokens, "temperature": 1.0,
                "top_k": 40, "top_p": 0.95, "min_p": 0.05,
                "stream": True, "stream_options": {"include_usage": True}}
        body.update(json.loads(args.extra))
        try:
            if args.split_n:
                results = [None] * args.n
                failures = []

                def one(i):
                    try:
                        results[i] = stream_completion(host, port, dict(body, n=1), args.timeout)
                    except Exception as e:  # noqa: BLE001: any failure is an error to count
                        failures.append(e)

                threads = [threading.Thread(target=one, args=(i,)) for i in range(args.n)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                if failures:
                    raise failures[0]
            else:
                results = [stream_completion(host, port, dict(body, n=args.n), args.timeout)]
            with totals.lock:
                totals.completed += 1
                for tokens, first, gaps in results:
                    totals.tokens += tokens
                    totals.first_token += first
                    totals.token_gaps += gaps
        except Exception as e:  # noqa: BLE001
            with totals.lock:
                totals.errors += 1
                totals.error_messages.append(str(e))


def run_level(args, host, port, prompts, clients, pid):
    totals = Totals()
    rss_start = resident_mib(pid)
    start = time.monotonic()
    deadline = start + args.seconds
    threads = [threading.Thread(target=client,
                                args=(args, host, port, prompts, totals, deadline, 7 * c))
               for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    return {
        "label": args.label, "clients": clients, "seconds": elapsed, "sent": totals.sent,
        "completed": totals.completed, "errors": totals.errors,
        "lost": totals.sent - totals.completed - totals.errors,
        "requests_per_s": totals.completed / elapsed, "tokens_per_s": totals.tokens / elapsed,
        "ttft_p50_ms": 1000 * percentile(totals.first_token, 0.5),
        "ttft_p99_ms": 1000 * percentile(totals.first_token, 0.99),
        "token_p50_ms": 1000 * percentile(totals.token_gaps, 0.5),
        "token_p99_ms": 1000 * percentile(totals.token_gaps, 0.99),
        "rss_start_mib": rss_start, "rss_end_mib": resident_mib(pid),
        "error_messages": totals.error_messages[:5],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="the server, e.g. http://127.0.0.1:8080 (loopback only)")
    parser.add_argument("--start", nargs=argparse.REMAINDER,
                        help="start this esamp-server command (with --port 0) and load it")
    parser.add_argument("--pid", type=int, help="the server's process, for its resident memory")
    parser.add_argument("--clients", default="1,4,16", help="concurrency levels, comma-separated")
    parser.add_argument("--requests", type=int, default=200, help="requests per level, at most")
    parser.add_argument("--seconds", type=float, default=60, help="seconds per level, at most")
    parser.add_argument("--n", type=int, default=4, help="samples per request")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--split-n", action="store_true",
                        help="send n requests of n = 1 instead of one of n")
    parser.add_argument("--extra", default="{}", help="JSON merged into every request body")
    parser.add_argument("--prompts", default=os.path.join(os.path.dirname(__file__), "..",
                                                         "prompts", "stories.txt"))
    parser.add_argument("--timeout", type=float, default=300, help="seconds per request")
    parser.add_argument("--label", default="server")
    parser.add_argument("--json", help="append one JSON line per level to this file")
    args = parser.parse_args()

    server = None
    pid = args.pid
    if args.start:
        server = subprocess.Popen(args.start, stdout=subprocess.PIPE, text=True)
        match = re.search(r"http://([\d.]+):(\d+)", server.stdout.readline())
        if not match:
            server.kill()
            sys.exit("load.py: the started server printed no http://HOST:PORT line")
        args.url = f"http://{match.group(1)}:{match.group(2)}"
        pid = server.pid
    if not args.url:
        sys.exit("load.py: give --url or --start")
    url = urllib.parse.urlparse(args.url)
    if url.hostname not in ("127.0.0.1", "localhost", "::1"):
        sys.exit(f"load.py: {args.url} is not a loopback address")
    with open(args.prompts) as f:
        prompts = [line.strip() for line in f if line.strip()]

    print(f"| server | clients | requests/s | tokens/s | TTFT p50 / p99 ms | per-token p50 / p99 ms"
          f" | errors | lost | RSS start / end MiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    failed = False
    try:
        for clients in [int(c) for c in args.clients.split(",")]:
            r = run_level(args, url.hostname, url.port, prompts, clients, pid)
            print(f"| {r['label']} | {clients} | {r['requests_per_s']:.2f} | "
                  f"{r['tokens_per_s']:.1f} | {r['ttft_p50_ms']:.0f} / {r['ttft_p99_ms']:.0f} | "
                  f"{r['token_p50_ms']:.1f} / {r['token_p99_ms']:.1f} | {r['errors']} | "
                  f"{r['lost']} | {r['rss_start_mib']:.0f} / {r['rss_end_mib']:.0f} |", flush=True)
            for message in r["error_messages"]:
                print(f"  error: {message}", file=sys.stderr)
            failed |= r["errors"] > 0 or r["lost"] > 0 or r["completed"] == 0
            if args.json:
                with open(args.json, "a") as out:
                    out.write(json.dumps(r) + "\n")
    finally:
        if server:
            server.send_signal(signal.SIGTERM)
            if server.wait(timeout=60) != 0:
                print(f"load.py: the server exited with {server.returncode}", file=sys.stderr)
                failed = True
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
