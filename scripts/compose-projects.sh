#!/usr/bin/env bash
# Real compose projects as a new user meets them: `dockhand convert -f FILE` run in each
# project's own folder, and why it stops. DIR holds one folder per project (its compose file and
# side files, or empty stand-ins), each with a SOURCE.txt: the repository, the compose file's
# path in it, the commit, and (optionally) the subfolder the file sits in. Prints a Markdown
# table and the figure. Not a test: the projects are data a fresh clone does not have.
# Usage: scripts/compose-projects.sh DIR
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
corpus="${1:?usage: scripts/compose-projects.sh DIR}"
bin="${DOCKHAND:-$root/target/debug/dockhand}"
[ -x "$bin" ] || (cd "$root" && cargo build -q)
echo "| project | compose file | translated | why it stops |"
echo "|---|---|---|---|"
ok=0; all=0
for d in "$corpus"/*/; do
    src="$d/SOURCE.txt"; [ -f "$src" ] || continue
    repo=$(sed -n 1p "$src"); path=$(sed -n 2p "$src"); sub=$(sed -n 4p "$src")
    file=$(basename "$path"); dir="$d${sub:+/$sub}"
    [ -f "$dir/$file" ] || file=$(ls "$dir" | grep -E '^(docker-)?compose.*\.ya?ml$' | head -1)
    out=$(cd "$dir" && timeout 60 "$bin" convert -f "$file" 2>&1 >/dev/null); rc=$?
    all=$((all + 1))
    if [ $rc -eq 0 ]; then ok=$((ok + 1)); verdict=yes; why=""; else
        verdict=no
        why=$(echo "$out" | grep -m1 -E "^(invalid|error)" | sed -E 's#^(invalid|error): ##' | cut -c1-150 | sed 's/|/\\|/g')
    fi
    echo "| $repo | $path | $verdict | $why |"
done
echo
echo "translated: $ok of $all"
