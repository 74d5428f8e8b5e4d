#!/usr/bin/env bash
# dockhand's benchmarks: dockhand against the engine's own limit and docker-compose, in one run
# on this machine, plus the planner's criterion benchmark. Prints a markdown table.
#
#   bench/run.sh [--quick] [--repeat N] [--only 1,2,3,4,5,6,7,8] [--no-planner]
#
# Needs Docker (the engine running) and builds what it needs: the release binaries and the
# local busybox image. docker-compose is measured when it is installed.
set -euo pipefail
cd "$(dirname "$0")/.."

planner=1
args=()
for a in "$@"; do
    if [ "$a" = "--no-planner" ]; then planner=0; else args+=("$a"); fi
done

bash scripts/build-images.sh dockhand/busybox:local >/dev/null
cargo build --release --quiet --bin dockhand --example bench
target/release/examples/bench "${args[@]}"

if [ "$planner" = 1 ]; then
    echo
    echo "Planner, 100,000 objects (criterion; target < 1 s per pass):"
    cargo bench --quiet --bench planner -- --noplot 2>/dev/null | grep -E '^plan_100k|time:' || true
fi
