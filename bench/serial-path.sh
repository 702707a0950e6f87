#!/usr/bin/env bash
# Where the log's serial append path spends its time under the `writes`
# scenario's 32-connection asserts (BENCHMARKS.md). Runs one round of
# `cargo bench --bench http -- writes`; while factlog's side of the
# 32-connection assert pair runs, it samples for SECS seconds:
#   - the server's group-commit metrics (/metrics): batches per second,
#     commands per batch, mean time from sending a batch to its outcome;
#   - the append backend's /proc/<pid>/schedstat: CPU time per batch, time
#     spent runnable but waiting for a CPU per batch, and time slices per batch;
#   - the same for each of the server's threads.
# Nothing here changes what is measured: it reads counters only.
#
# Usage: bench/serial-path.sh            (builds and runs the bench's binaries)
#        FACTLOG_BENCH_BIN=/path/to/factlog bench/serial-path.sh
# Needs what `cargo bench --bench http` needs, plus curl, ss and psql.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-3}
log=$(mktemp)
trap 'rm -f "$log"' EXIT

FACTLOG_BENCH_ROUNDS=1 cargo bench --bench http -- writes >"$log" 2>&1 &
bench=$!

# The 1-connection pair reports first; the 32-connection pair follows.
until grep -q "POST /v1/claims, 1 connection" "$log"; do
    kill -0 "$bench" 2>/dev/null || { cat "$log"; exit 1; }
    sleep 0.2
done
server=""
for p in $(pgrep -f "factlog.* serve"); do
    [ "$(cat "/proc/$p/comm")" != postgres ] && server=$p && break
done
port=$(ss -ltnpH | grep "pid=$server," | awk '{print $4}' | sed 's/.*://' | head -1)
pidfile=$(find "${TMPDIR:-/tmp}/factlog-ephemeral" -name postmaster.pid | head -1)
pgport=$(sed -n 4p "$pidfile")
metrics() {
    curl -s "127.0.0.1:$port/metrics" |
        awk '/^factlog_group_commit_(seconds|batch_commands)_(sum|count) / {print $1, $2}'
}
count() { metrics | awk '$1 == "factlog_group_commit_seconds_count" {print $2}'; }

# Wait for factlog's side of the pair: batches flowing at more than 400/s.
prev=$(count)
while sleep 0.5; do
    kill -0 "$bench" 2>/dev/null || { echo "the bench ended before factlog's side ran" >&2; cat "$log"; exit 1; }
    now=$(count)
    [ "${now%.*}" -gt $(( ${prev%.*} + 200 )) ] && break
    prev=$now
done
backend=$(psql -h 127.0.0.1 -p "$pgport" -U postgres -d http_writes -Atc \
    "SELECT pid FROM pg_stat_activity WHERE query LIKE '%factlog_append_at%' \
     AND pid <> pg_backend_pid() LIMIT 1")
threads() { for t in /proc/"$server"/task/*; do echo "$(cat "$t/comm") $(cat "$t/schedstat")"; done; }
m1=$(metrics); b1=$(cat "/proc/$backend/schedstat"); t1=$(threads)
sleep "$SECS"
m2=$(metrics); b2=$(cat "/proc/$backend/schedstat"); t2=$(threads)
wait "$bench" || true

python3 - "$m1" "$m2" "$b1" "$b2" "$t1" "$t2" <<'EOF'
import sys
m1, m2, b1, b2, t1, t2 = sys.argv[1:]
def kv(s): return {l.split()[0]: float(l.split()[1]) for l in s.splitlines()}
a, b = kv(m1), kv(m2)
d = {k: b[k] - a[k] for k in a}
n = d["factlog_group_commit_seconds_count"]
print(f"append batches: {n:.0f}, {d['factlog_group_commit_batch_commands_sum'] / n:.1f} commands each, "
      f"{1000 * d['factlog_group_commit_seconds_sum'] / n:.2f} ms from send to outcome")
x, y = list(map(int, b1.split())), list(map(int, b2.split()))
print(f"append backend, per batch: {(y[0] - x[0]) / 1e3 / n:.0f} us on a CPU, "
      f"{(y[1] - x[1]) / 1e3 / n:.0f} us runnable but waiting for one, {(y[2] - x[2]) / n:.1f} time slices")
for p, q in zip(t1.splitlines(), t2.splitlines()):
    p, q = p.split(), q.split()
    run = (int(q[1]) - int(p[1])) / 1e3 / n
    if run > 1:
        print(f"server thread {p[0]}, per batch: {run:.0f} us on a CPU, "
              f"{(int(q[2]) - int(p[2])) / 1e3 / n:.0f} us waiting for one")
EOF
grep "POST /v1/claims, 32 connections" "$log" | head -1
