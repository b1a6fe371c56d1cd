#!/usr/bin/env bash
# xAPI bridge benchmark: statements/s delivered to a local receiver and accept-to-delivery lag p50/p99.
# Usage: benches/bridge.sh [--backlog-messages N] [--steady-messages N] [--results N] [--rate MSG_PER_S] [--batch-size N]
# Builds the release binary, then runs benches/bridge_bench.py (python3, loopback only).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
cargo build --release --quiet
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -sr); $(date -u +%Y-%m-%dT%H:%MZ)"
exec python3 "$root/benches/bridge_bench.py" --binary "$root/target/release/uwlr-gateway" "$@"
