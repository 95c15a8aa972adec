#!/usr/bin/env bash
# Starts a Docker Engine for the plugin's tests unless one already answers
# on its socket, and prints the DOCKER_HOST to use. Idempotent; waits for an
# engine that is still stopping to go before starting a new one.
#
#   export DOCKER_HOST=$(plugins/docker/tests/support/start-dockerd.sh)
#
# The engine has no bridge and no iptables rules: containers run with
# network "none" only. PLAYGROUND_DOCKERD_ROOT moves it (default
# /tmp/playground-dockerd).
set -euo pipefail

root=${PLAYGROUND_DOCKERD_ROOT:-/tmp/playground-dockerd}
socket="$root/docker.sock"
host="unix://$socket"

answers() {
    DOCKER_HOST=$host timeout 5 docker version --format '{{.Server.Version}}' >/dev/null 2>&1
}

running() {
    [[ -f "$root/docker.pid" ]] && kill -0 "$(cat "$root/docker.pid")" 2>/dev/null
}

for tool in dockerd containerd runc docker; do
    if ! command -v "$tool" >/dev/null; then
        echo "start-dockerd: $tool is not installed (apt-get install docker.io)" >&2
        exit 1
    fi
done
mkdir -p "$root/data" "$root/exec"

for _ in $(seq 1 120); do
    if answers; then
        echo "$host"
        exit 0
    fi
    if ! running; then
        rm -f "$socket" "$root/docker.pid"
        nohup dockerd \
            --host "$host" \
            --data-root "$root/data" \
            --exec-root "$root/exec" \
            --pidfile "$root/docker.pid" \
            --bridge=none \
            --iptables=false \
            --ip-masq=false \
            >>"$root/dockerd.log" 2>&1 </dev/null &
    fi
    sleep 0.5
done
echo "start-dockerd: dockerd did not answer on $socket within 60 s; its log:" >&2
tail -n 40 "$root/dockerd.log" >&2 || true
exit 1
