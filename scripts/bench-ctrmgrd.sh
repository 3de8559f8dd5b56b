#!/usr/bin/env bash
# Benchmark of the real ctrmgrd (release build), measured in one run by the bench-ctrmgrd
# program (tests/src/bin/bench-ctrmgrd.rs):
#   - reaction latency: HSET of a pure label change into STATE_DB KUBE_LABELS|SET (what
#     `config kubernetes label add` writes) -> the node patch applied by the fake Kubernetes API
#     server (its store's change event), p50/p99 over CHANGES changes one after the other
#     (goal on loopback: p99 < 5 ms);
#   - resident memory (VmRSS of /proc/<pid>/status) after IDLE_SECS s idle with FEATURES
#     locally owned features, then after each of ROUNDS rounds of RSS_CHANGES label changes
#     sent without waiting (goal: < 8 MiB and not growing). Anonymous and file-backed (the
#     binary's text) parts are shown apart.
#
# Usage: scripts/bench-ctrmgrd.sh [CHANGES] [IDLE_SECS] [FEATURES] [RSS_CHANGES] [ROUNDS]
#        (defaults 1000, 60, 30, 10000, 3)
#
# Everything is private: a redis-server on a unix socket in a temp dir, the fake API server on
# 127.0.0.1:<ephemeral> over HTTPS with client certificates, the node programs (systemctl,
# kubeadm, modprobe) answered by the bench through the lab's control socket. No Docker needed.
set -euo pipefail
cd "$(dirname "$0")/.."

changes=${1:-1000}
idle=${2:-60}
features=${3:-30}
rss_changes=${4:-10000}
rounds=${5:-3}
target_dir=${CARGO_TARGET_DIR:-target}

command -v redis-server >/dev/null || scripts/install-deps
command -v redis-server >/dev/null || { echo "bench-ctrmgrd: redis-server is required" >&2; exit 1; }

cargo build --release --quiet -p sonic-daemon --bin ctrmgrd \
  -p sonic-tests --bin bench-ctrmgrd --bin sonic-lab

exec "$target_dir/release/bench-ctrmgrd" \
  --ctrmgrd "$(pwd)/$target_dir/release/ctrmgrd" \
  --shim "$(pwd)/$target_dir/release/sonic-lab" \
  --changes "$changes" --idle-secs "$idle" --features "$features" --rss-changes "$rss_changes" --rounds "$rounds"
