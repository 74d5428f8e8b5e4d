#!/usr/bin/env bash
# How far dockhand gets with each compose file of a folder: translated (`dockhand convert`),
# validated and converged (`dockhand sync` in a scratch instance of its own, removed after),
# and why it stops. Prints a Markdown table. Not a test: the corpus is data that a fresh clone
# does not have. Usage: scripts/compose-report.sh [DIR] (default ../shared/compose-corpus)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
corpus="${1:-$root/../shared/compose-corpus}"
[ -d "$corpus" ] || { echo "no folder $corpus" >&2; exit 2; }
bin="${DOCKHAND:-$root/target/debug/dockhand}"
[ -x "$bin" ] || (cd "$root" && cargo build -q)
timeout="${REPORT_TIMEOUT:-40s}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The first line that says why, without the scratch directory's path.
why() { { grep -m1 -E "$1" || true; } | sed -E "s#$work/##g; s#^ *((invalid|error): )?##" | cut -c1-160 | sed 's/|/\\|/g'; }

echo "| file | servers | translated | stand-in files | validated | converged | why it stops |"
echo "|---|---|---|---|---|---|---|"
n=0
for file in "$corpus"/*.yaml "$corpus"/*.yml; do
    [ -f "$file" ] || continue
    name="$(basename "$file")"
    project="${name%.*}"
    n=$((n + 1))
    dir="$work/$project"
    mkdir -p "$dir"
    cp "$file" "$dir/compose.yaml"
    # The corpus holds compose files only: files of the project they bind (configs, secrets,
    # source trees) are stood in for by empty ones, so the report shows where each stops next.
    stubs=0
    while ! "$bin" convert -f "$dir/compose.yaml" >"$work/out" 2>"$work/err" && [ $stubs -lt 20 ]; do
        missing="$(sed -nE 's#.*(bind source |file: )([^ ]+) does not exist on this host.*#\2#p' "$work/err" | head -1)"
        case "$missing" in
            "") break ;;
            /*) path="$missing" ;;
            *) path="$dir/$missing" ;;
        esac
        case "$path" in "$dir"/*) ;; *) break ;; esac  # a host path: not ours to make
        mkdir -p "$(dirname "$path")"
        case "$(basename "$path")" in *.*) : >"$path" ;; *) mkdir -p "$path" ;; esac
        stubs=$((stubs + 1))
    done
    if ! "$bin" convert -f "$dir/compose.yaml" >"$work/out" 2>"$work/err"; then
        # A file or directory the project needs that is not here: translated, not valid here.
        if grep -q 'does not exist on this host' "$work/err"; then
            echo "| $name | - | yes | $stubs | no | - | $(why . <"$work/err") |"
        else
            echo "| $name | - | no | $stubs | - | - | $(why . <"$work/err") |"
        fi
        continue
    fi
    services="$(grep -c '^kind: Server' "$work/out" || true)"
    instance="report$$-$n"
    set +e
    out="$(DOCKHAND_LOG=off "$bin" sync --manifests "$dir" --state "$work/$project.db" \
        --instance "$instance" --timeout "$timeout" 2>&1)"
    rc=$?
    set -e
    if [ $rc -eq 0 ]; then
        echo "| $name | $services | yes | $stubs | yes | yes | - |"
    else
        # The most telling line first: an invalid object, a failed action, then the rest.
        reason=""
        for pattern in 'is Invalid' 'failed:' 'invalid|error:' 'not converged'; do
            [ -n "$reason" ] || reason="$(printf '%s\n' "$out" | why "$pattern")"
        done
        # An invalid object (a missing build context, the host policy) is not valid here.
        valid=yes
        case "$reason" in *"is Invalid"*) valid=no ;; esac
        echo "| $name | $services | yes | $stubs | $valid | no | ${reason:-exit $rc} |"
    fi
    # Remove what the scratch instance made: containers, then volumes and networks.
    mkdir -p "$work/empty"
    DOCKHAND_LOG=off "$bin" sync --manifests "$work/empty" --state "$work/$project.db" \
        --instance "$instance" --allow-empty --timeout 60s >/dev/null 2>&1 || true
    label="label=dockhand.instance=$instance"
    docker ps -aq --filter "$label" | xargs -r docker rm -f -v >/dev/null 2>&1 || true
    docker volume ls -q --filter "$label" | xargs -r docker volume rm >/dev/null 2>&1 || true
    docker network ls -q --filter "$label" | xargs -r docker network rm >/dev/null 2>&1 || true
done
