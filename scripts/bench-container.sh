#!/usr/bin/env bash
# Benchmark of the `container` binary against its floors, measured in one run:
#   - `container id <f>`   vs  `redis-cli -s <sock> -n 6 hget FEATURE|<f> container_id`
#     (goal: within 1.5x: one process start, one connection, one read);
#   - `container stop <f>` vs  `docker stop <f>`, `container start <f>` vs `docker start <f>`
#     on a small busybox container (goal: no slower than the docker CLI).
#
# Usage: scripts/bench-container.sh [ID_RUNS] [DOCKER_RUNS]     (defaults 300 and 15)
#
# Builds the release binaries, starts a private redis-server on a unix socket in a temp dir, and
# uses the private dockerd named by SONIC_TEST_DOCKER_HOST or starts one like scripts/test (never
# the host's default socket). The container is a busybox-static image whose process exits on
# SIGTERM, created with --network host. Kubernetes support is on (a marker file named by
# SONIC_CTRMGRD_UNIT), so `container start/stop` also write STATE_DB and the labels, as on a
# switch with ctrmgrd. Timing by hyperfine (-N: no shell in between).
set -euo pipefail
cd "$(dirname "$0")/.."

id_runs=${1:-300}
docker_runs=${2:-15}
target_dir=${CARGO_TARGET_DIR:-target}

for tool in hyperfine redis-server redis-cli docker dockerd jq; do
  command -v "$tool" >/dev/null || scripts/install-deps
  command -v "$tool" >/dev/null || { echo "bench-container: $tool is required" >&2; exit 1; }
done
busybox=${SONIC_TEST_BUSYBOX:-/bin/busybox}
[ -x "$busybox" ] || { echo "bench-container: $busybox (busybox-static) is required" >&2; exit 1; }

cargo build --release --quiet -p sonic-cli --bin container --bin container_startup
container_bin="$(pwd)/$target_dir/release/container"

work=$(mktemp -d /tmp/bench-container.XXXXXX)
redis_pid=""
dockerd_pid=""
feature="snmpbench$$"
cleanup() {
  if [ -n "${DOCKER_HOST:-}" ]; then
    docker rm -f "$feature" >/dev/null 2>&1 || true
  fi
  if [ -n "$redis_pid" ]; then
    kill "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
  fi
  if [ -n "$dockerd_pid" ] && kill -0 "$dockerd_pid" 2>/dev/null; then
    kill "$dockerd_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$dockerd_pid" 2>/dev/null || true
    umount -R "$work/data" 2>/dev/null || true
  fi
  rm -rf "$work" 2>/dev/null || true
}
trap cleanup EXIT

# --- Redis ---------------------------------------------------------------------------------
sock="$work/redis.sock"
redis-server --port 0 --unixsocket "$sock" --unixsocketperm 700 --save '' --appendonly no \
  --dir "$work" --logfile "$work/redis.log" &
redis_pid=$!
for _ in $(seq 1 200); do
  if [ -S "$sock" ] && redis-cli -s "$sock" ping >/dev/null 2>&1; then break; fi
  sleep 0.05
done
redis-cli -s "$sock" ping >/dev/null
cat >"$work/database_config.json" <<EOF
{
  "INSTANCES": {"redis": {"hostname": "127.0.0.1", "port": 0, "unix_socket_path": "$sock"}},
  "DATABASES": {
    "CONFIG_DB": {"id": 4, "separator": "|", "instance": "redis"},
    "STATE_DB": {"id": 6, "separator": "|", "instance": "redis"}
  },
  "VERSION": "1.0"
}
EOF
redis-cli -s "$sock" -n 4 hset "FEATURE|$feature" set_owner local state enabled >/dev/null
redis-cli -s "$sock" -n 6 hset "FEATURE|$feature" current_owner local container_id "$feature" \
  system_state up remote_state none >/dev/null

# --- Docker --------------------------------------------------------------------------------
if [ -n "${SONIC_TEST_DOCKER_HOST:-}" ]; then
  export DOCKER_HOST="$SONIC_TEST_DOCKER_HOST"
else
  mkdir -p "$work/data" "$work/exec"
  dockerd --data-root "$work/data" --exec-root "$work/exec" --pidfile "$work/dockerd.pid" \
    --host "unix://$work/docker.sock" --bridge=none --iptables=false --ip6tables=false \
    >"$work/dockerd.log" 2>&1 &
  dockerd_pid=$!
  export DOCKER_HOST="unix://$work/docker.sock"
  ok=""
  for _ in $(seq 1 120); do
    if [ -S "$work/docker.sock" ] && timeout 5 docker version >/dev/null 2>&1; then ok=1; break; fi
    kill -0 "$dockerd_pid" 2>/dev/null || break
    sleep 0.5
  done
  if [ -z "$ok" ]; then
    echo "bench-container: private dockerd did not come up; its log:" >&2
    tail -n 30 "$work/dockerd.log" >&2
    exit 1
  fi
fi
mkdir -p "$work/rootfs/bin"
cp "$busybox" "$work/rootfs/bin/busybox"
for applet in sh sleep; do ln -s busybox "$work/rootfs/bin/$applet"; done
tar -C "$work/rootfs" -c . | docker import \
  -c 'CMD ["/bin/sh", "-c", "trap \"exit 0\" TERM; sleep 100000 & wait"]' - bench-container-busybox:1 >/dev/null
docker create --name "$feature" --network host bench-container-busybox:1 >/dev/null

export SONIC_DB_CONFIG="$work/database_config.json"
touch "$work/ctrmgrd.service"
export SONIC_CTRMGRD_UNIT="$work/ctrmgrd.service"
export SONIC_REMOTE_CTR_CONFIG="$work/remote_ctr.config.json"

# Sanity: the binary answers what redis-cli reads, and drives the container.
[ "$("$container_bin" id "$feature")" = "$feature" ]
"$container_bin" start "$feature"
[ "$(docker inspect -f '{{.State.Running}}' "$feature")" = "true" ]
"$container_bin" stop "$feature"
[ "$(docker inspect -f '{{.State.Running}}' "$feature")" = "false" ]
# Started last, so that STATE_DB names the local container for `id`.
"$container_bin" start "$feature"
[ "$("$container_bin" id "$feature")" = "$feature" ]

# --- Measurements --------------------------------------------------------------------------
# Each command is prepared by its own counterpart (one --prepare per command), so that
# `container stop` always finds the container recorded as running in STATE_DB.
hyperfine -N --style basic --warmup 20 --runs "$id_runs" --export-json "$work/id.json" \
  -n "container id" "$container_bin id $feature" \
  -n "redis-cli hget" "redis-cli -s $sock -n 6 hget FEATURE|$feature container_id"
hyperfine -N --style basic --warmup 2 --runs "$docker_runs" --export-json "$work/stop.json" \
  --prepare "$container_bin start $feature" --prepare "docker start $feature" \
  -n "container stop" "$container_bin stop $feature" \
  -n "docker stop" "docker stop $feature"
hyperfine -N --style basic --warmup 2 --runs "$docker_runs" --export-json "$work/start.json" \
  --prepare "$container_bin stop $feature" --prepare "docker stop $feature" \
  -n "container start" "$container_bin start $feature" \
  -n "docker start" "docker start $feature"

ratio() { # file: mean of the first command / mean of the second
  jq -r '.results as $r | "\($r[0].command): \($r[0].mean * 1000 | . * 100 | round / 100) ms (user+sys \(($r[0].user + $r[0].system) * 1000 | . * 100 | round / 100) ms), \($r[1].command): \($r[1].mean * 1000 | . * 100 | round / 100) ms (user+sys \(($r[1].user + $r[1].system) * 1000 | . * 100 | round / 100) ms), ratio \($r[0].mean / $r[1].mean | . * 100 | round / 100)"' "$1"
}
echo
echo "== results (mean wall time per run; ratio = container / reference)"
echo "id:    $(ratio "$work/id.json")    goal <= 1.5"
echo "stop:  $(ratio "$work/stop.json")    goal <= 1.0"
echo "start: $(ratio "$work/start.json")    goal <= 1.0"
