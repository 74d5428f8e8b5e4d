#!/usr/bin/env bash
# Runs dockhand's controller on the bundled manifests/, building their local image first.
# Extra arguments go to `dockhand up` (for example --instance demo or --resync 10s).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-images.sh
exec cargo run --quiet -- up --manifests manifests "$@"
