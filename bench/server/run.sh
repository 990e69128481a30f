#!/usr/bin/env bash
# Load side by side on one model: llama.cpp's own llama-server (scripts/build-llama-cpp --server,
# the same sources as the adapter's llama.cpp), esamp-server at beta = 0, and esamp-server with the
# defaults, each started in turn on a free loopback port with the same --parallel, --ctx-size and
# --threads, and loaded by load.py. Where llama-server refuses n > 1, its clients send the n
# requests of n = 1 its users must send. Prints load.py's tables; JSON lines go to $OUT (default
# build/server-load.jsonl, appended to), tokens/s by clients to its .dat and a plot to its .svg.
#   bench/server/run.sh MODEL.gguf [load.py options...]
# Env: ESAMP_SERVER (default build/default/examples/server/esamp-server), PARALLEL (16), CTX (8192),
#      THREADS (2), SERVERS ("llama-server esamp-beta0 esamp-default"; also esamp-separate-prefill:
#      the defaults with --separate-prefill).
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 1 ] || { echo "usage: $0 MODEL.gguf [load.py options...]" >&2; exit 2; }
model=$1
shift
esamp_server=${ESAMP_SERVER:-build/default/examples/server/esamp-server}
parallel=${PARALLEL:-16} ctx=${CTX:-8192} threads=${THREADS:-2}
out=${OUT:-build/server-load.jsonl}
servers=${SERVERS:-llama-server esamp-beta0 esamp-default}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_healthy() {
  for _ in $(seq 600); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/health")" = 200 ] && return 0
    sleep 0.5
  done
  echo "the server on port $1 did not become healthy" >&2
  return 1
}

for name in $servers; do
  port=$(free_port)
  split=()
  case $name in
    llama-server)
      binary="$(scripts/build-llama-cpp --server)/bin/llama-server"
      "$binary" -m "$model" --host 127.0.0.1 --port "$port" -np "$parallel" -c "$ctx" --kv-unified \
        -t "$threads" -b 512 -ub 512 --log-disable >/dev/null 2>&1 &
      ;;
    esamp-beta0 | esamp-default | esamp-separate-prefill)
      extra=()
      [ "$name" = esamp-beta0 ] && extra=(--beta 0)
      [ "$name" = esamp-separate-prefill ] && extra=(--separate-prefill)
      "$esamp_server" --model "$model" --port "$port" --parallel "$parallel" --ctx-size "$ctx" \
        --threads "$threads" "${extra[@]}" >/dev/null 2>&1 &
      ;;
    *)
      echo "unknown server $name" >&2
      exit 2
      ;;
  esac
  pid=$!
  wait_healthy "$port"
  if [ "$name" = llama-server ]; then
    choices=$(curl -s "http://127.0.0.1:$port/v1/completions" \
      -d '{"prompt": "Hello", "max_tokens": 2, "n": 2}' | grep -o '"index"' | wc -l)
    [ "$choices" = 2 ] || { echo "llama-server: n = 2 gives $choices choices: the n requests are sent apart"; split=(--split-n); }
  fi
  python3 bench/server/load.py --url "http://127.0.0.1:$port" --pid "$pid" --label "$name" \
    --json "$out" "${split[@]}" "$@" || echo "!! $name: load.py reported errors or lost requests" >&2
  kill -TERM "$pid"
  wait "$pid" || echo "!! $name exited with $?" >&2
done

# Tokens/s by clients, one column per server, and its plot (when gnuplot is there).
python3 - "$out" >"${out%.jsonl}.dat" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
servers = list(dict.fromkeys(r["label"] for r in rows))
clients = sorted({r["clients"] for r in rows})
value = {(r["label"], r["clients"]): r["tokens_per_s"] for r in rows}
print("clients", *servers)
for c in clients:
    print(c, *(f"{value[(s, c)]:.2f}" if (s, c) in value else "NaN" for s in servers))
PY
if command -v gnuplot >/dev/null; then
  gnuplot -e "data='${out%.jsonl}.dat'; out='${out%.jsonl}.svg'" bench/server/plot.gnuplot
fi
