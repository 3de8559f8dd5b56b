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
#     binary's text) parts are shown apart, and after the idle period and the last round the
#     resident KiB per mapped file (from /proc/<pid>/smaps).
#
# Where the pages are (30 features, 60 s idle, kernel 6.18, ext4): nearly all of the text of
# the binary and of libc is resident once ctrmgrd has joined (file-backed RSS ~ text size, not
# the pages actually run), so the text size is the lever; the anonymous part is the allocator's
# arena, .data.rel.ro (relocated pointers of the PIE, ~260 KiB) and the stacks.
#   before: opt-level 3, thin LTO, glibc malloc: idle 11.49 MiB (anon 1.6 + file 10.2: ctrmgrd
#           8.2, libc 1.4, libm 0.3, ld.so 0.2); after 10k/20k/30k changes 13.75/14.09/14.09.
#   now:    opt-level "z", fat LTO, 1 unit (Cargo.toml), mimalloc (ctrmgrd.rs), DT_RELR
#           relocations (sonic-daemon/build.rs): `scripts/bench-ctrmgrd.sh 1000 60 30 10000 3`
#           idle 8.36 MiB (file 6.4: ctrmgrd 4.8, libc 1.4, ld.so 0.2, libgcc 0.1; anon 2.0:
#           mimalloc's arena 1.5, ctrmgrd's .data.rel.ro 0.26, main stack 0.13); after
#           10k/20k/30k changes 8.66/8.57/8.78 MiB; p50 0.72 ms, p99 2.40 ms.
#   then:   kubeconfig read with serde_yaml, nodes and pods as dynamic objects (no typed Pod /
#           Node deserializers, binary 6.39 -> 5.77 MB): idle 7.81 MiB (anon 1932 KiB, file
#           6068 KiB: ctrmgrd 4808, libc 1280, ld.so 212, libgcc 100); after 10k/20k/30k
#           changes 8.11/8.16/7.95 MiB; p50 0.695 ms, p99 0.836 ms.
#   session 3 (lanes, restarts answered, clocks persisted; 5caeeb5): idle 7.83 MiB (anon 1948
#           KiB, file 6068 KiB); after 10k/20k/30k changes 8.07/8.03/8.11 MiB; p50 0.724 ms,
#           p99 0.988 ms. With the in-place clock check (2b4c0b1): idle 7.69 MiB; after
#           10k/20k/30k changes 7.88/7.93/8.05 MiB; p50 0.718 ms, p99 0.902 ms. 8 rounds of 10k
#           (10 s idle): anonymous 2104..2368 KiB, up and down, no steady growth.
#   The file-backed figure of the same binary varies by ~0.25 MiB between runs (how the page
#   cache holds the file).
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
