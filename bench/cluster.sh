#!/bin/bash
# Cluster mode: a publish's one-way latency and deliveries/s on one node
# without Redis, one node through Redis, and two nodes (bench/cluster.mjs).
set -eu
cd "$(dirname "$0")/.."
command -v redis-server >/dev/null || { echo "cluster bench: redis-server missing (scripts/deps.sh bench)"; exit 1; }
node bench/cluster.mjs
