#!/usr/bin/env bash
# The full-size ERNIE-4.5-VL-28B-A3B shape on this machine (issue 13), single process: low-bit
# dummy weights generated directly in their format (seconds, not the hour quantizing fp32 dummy
# weights would take on 2 cores), every expert loaded, then prefill of a 128-token prompt and
# batch-1 decode, resident memory, and the decode step against the memory-bandwidth floor measured
# by a copy benchmark in the same run. Output: the table on stdout and target/fullsize/bench.json.
#   scripts/fullsize/run.sh                 # int4 (block 64): ~15 GiB of experts
#   scripts/fullsize/run.sh int2-mixed      # ~8 GiB, slower kernels (see docs/PERFORMANCE.md)
# Needs ~18 GiB free for int4. The cluster form is `pdserve local --preset ernie-4.5-vl-28b-a3b
# --quantization MODE --low-bit-dummy-weights --experts N`; in int4 its processes together need
# more than this 24 GiB machine has (each worker also holds the dense parts and embeddings), so
# it is int2-mixed here; not scripted yet (docs/STATUS.md).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MODE="${1:-int4}"
OUT="$ROOT/target/fullsize"
mkdir -p "$OUT"
echo "full-size run, $MODE, $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores," \
  "$(awk '/MemAvailable/ {printf "%.1f GiB available", $2 / 1048576}' /proc/meminfo)"
"$ROOT/bin/pdserve" model bench --preset ernie-4.5-vl-28b-a3b --quantization "$MODE" \
  --low-bit-dummy-weights --batches 1 --prompt-len 128 --decode-steps 16 --repeats 3 \
  --bandwidth-floor --json "$OUT/bench-$MODE.json"
