#!/bin/sh
# A three-node Docker Swarm on this machine, for the swarm tests: `scripts/swarm-lab.sh up`
# starts three dockerd processes, each in a network namespace of its own, joins them into one
# swarm (node 1 the manager) and loads the test image into each; `down` removes everything it
# made. The machine's own engine is never touched or reconfigured.
#
# Each node's socket is unix:///run/dhlab/nN/docker.sock; `env` prints DOCKER_HOST for node 1.
# Needs root, iproute2, util-linux (nsenter, unshare) and dockerd.
set -eu

LAB=${DHLAB_ROOT:-/run/dhlab}
NODES=${DHLAB_NODES:-3}
NET=10.77.0
IMAGE=${DHLAB_IMAGE:-dockhand/busybox:local}

node_ns() { echo "dhlab-n$1"; }
sock() { echo "unix://$LAB/n$1/docker.sock"; }
dk() { n=$1; shift; docker -H "$(sock "$n")" "$@"; }

# Waits up to $2 seconds for $1 to succeed.
wait_for() {
    i=0
    while ! sh -c "$1" >/dev/null 2>&1; do
        i=$((i + 1))
        [ "$i" -le $(( $2 * 5 )) ] || { echo "swarm-lab: timed out: $1" >&2; return 1; }
        sleep 0.2
    done
}

start_node() {
    n=$1
    ns=$(node_ns "$n")
    dir=$LAB/n$n
    mkdir -p "$dir/data" "$dir/exec" "$dir/cg"
    echo '{}' > "$dir/daemon.json"
    ip netns add "$ns"
    ip link add "v$n" type veth peer name "p$n"
    ip link set "v$n" netns "$ns"
    ip link set "p$n" netns dhlab-br
    ip -n dhlab-br link set "p$n" master br0 up
    ip -n "$ns" addr add "$NET.1$n/24" dev "v$n"
    ip -n "$ns" link set "v$n" up
    ip -n "$ns" link set lo up
    ip -n "$ns" route add default via "$NET.1" dev "v$n"
    # dockerd needs a /sys of its own network namespace and the host's cgroups: save the
    # cgroups aside, mount a fresh sysfs, move them back, then run dockerd.
    DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 setsid nsenter --net="/run/netns/$ns" \
        unshare --mount --uts --propagation slave sh -c "
            mount --rbind /sys/fs/cgroup '$dir/cg' &&
            umount -l /sys &&
            mount -t sysfs sysfs /sys &&
            mount --move '$dir/cg' /sys/fs/cgroup &&
            hostname dhlab-node$n &&
            exec dockerd --data-root '$dir/data' --exec-root '$dir/exec' \
                --pidfile '$dir/dockerd.pid' -H '$(sock "$n")' \
                --config-file '$dir/daemon.json' --storage-driver overlay2
        " > "$dir/dockerd.log" 2>&1 < /dev/null &
}

up() {
    if [ -d "$LAB" ]; then
        echo "swarm-lab: $LAB exists; run '$0 down' first" >&2
        exit 1
    fi
    mkdir -p "$LAB"
    ip netns add dhlab-br
    ip -n dhlab-br link add br0 type bridge
    ip -n dhlab-br addr add "$NET.1/24" dev br0
    ip -n dhlab-br link set br0 up
    ip -n dhlab-br link set lo up
    n=1
    while [ "$n" -le "$NODES" ]; do
        start_node "$n"
        n=$((n + 1))
    done
    n=1
    while [ "$n" -le "$NODES" ]; do
        wait_for "docker -H $(sock "$n") info" 60
        n=$((n + 1))
    done
    dk 1 swarm init --advertise-addr "$NET.11" >/dev/null
    token=$(dk 1 swarm join-token -q worker)
    n=2
    while [ "$n" -le "$NODES" ]; do
        dk "$n" swarm join --token "$token" --advertise-addr "$NET.1$n" "$NET.11:2377" >/dev/null
        n=$((n + 1))
    done
    # No registry here: every node gets the test image from the machine's engine (built there
    # first when it is missing).
    "$(dirname "$0")/build-images.sh" "$IMAGE" >/dev/null
    n=1
    while [ "$n" -le "$NODES" ]; do
        docker save "$IMAGE" | dk "$n" load >/dev/null
        n=$((n + 1))
    done
    wait_for "[ \$(docker -H $(sock 1) node ls -q --filter role=worker | wc -l) -ge $((NODES - 1)) ]" 30
    echo "swarm-lab: $NODES nodes up; manager at $(sock 1)"
}

down() {
    n=1
    while [ "$n" -le "$NODES" ]; do
        dir=$LAB/n$n
        if [ -f "$dir/dockerd.pid" ]; then
            pid=$(cat "$dir/dockerd.pid")
            kill "$pid" 2>/dev/null || true
            i=0
            while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 100 ]; do
                sleep 0.2
                i=$((i + 1))
            done
            kill -9 "$pid" 2>/dev/null || true
        fi
        ip netns del "$(node_ns "$n")" 2>/dev/null || true
        n=$((n + 1))
    done
    ip netns del dhlab-br 2>/dev/null || true
    # The daemons' mounts lived in their own mount namespaces; only files remain.
    rm -rf "$LAB"
    echo "swarm-lab: down"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    env) echo "DOCKER_HOST=$(sock 1)" ;;
    *) echo "usage: $0 up|down|env" >&2; exit 2 ;;
esac
