#!/usr/bin/env bash
# Alternates 1-round `writes` runs of two or more factlog server binaries (or
# wrapper scripts that set a server's environment), so that builds and
# settings are compared on the same machine within minutes of each other:
# absolute rates drift 2-4x between runs here, and even the ratio to pgbench
# moves by a tenth from round to round, so one run of each says little.
#
# Each run is one round of the 32-connection assert pair against pgbench
# (`cargo bench --bench http -- writes`, FACTLOG_BENCH_ROUNDS=1). Its per-round
# row is appended to LOG (default bench/results/ab.log) with the time and
# the binary's path as given; the full reports go to bench/results/ as usual.
#
# Usage: bench/ab.sh N BIN_A BIN_B [BIN...]    (N passes over the binaries)
# e.g.   cp target/release/factlog /tmp/base   (then change the code, rebuild)
#        bench/ab.sh 3 /tmp/base target/release/factlog
# A wrapper for a setting:  printf '#!/bin/sh\nTOKIO_WORKER_THREADS=1 exec /tmp/base "$@"\n'
# Do not build or run anything else meanwhile: it shares the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 3 ]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 2
fi
passes=$1
shift
for b in "$@"; do
    [ -x "$b" ] || { echo "not an executable: $b" >&2; exit 2; }
done
mkdir -p bench/results
LOG=${LOG:-bench/results/ab.log}

# Built once and then run directly, so each run skips cargo's freshness checks.
bench=$(cargo bench --bench http --no-run --message-format=json 2>/dev/null |
    grep '"kind":\["bench"\]' | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)
[ -x "$bench" ] || { echo "could not build the http bench" >&2; exit 1; }

# A run's progress goes to $LOG.err (kept from the last run only), so that
# a failed run can say why.
for _ in $(seq "$passes"); do
    for b in "$@"; do
        out=$(FACTLOG_BENCH_BIN=$(realpath "$b") FACTLOG_BENCH_ROUNDS=1 "$bench" writes --bench 2>"$LOG.err") ||
            { { grep -m1 -A3 panicked "$LOG.err" || tail -5 "$LOG.err"; } >&2; exit 1; }
        row=$(printf '%s\n' "$out" | grep '^| 1 | POST /v1/claims, 32 connections' || echo '(no result)')
        printf '%s %s %s\n' "$(date -u +%H:%M)" "$b" "$row" | tee -a "$LOG"
    done
done
