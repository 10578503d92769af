#!/usr/bin/env bash
# The full-size ERNIE-4.5-VL-28B-A3B shape through `pdserve local` (issue 13): a router, a prefill
# worker, a decode worker and expert shards, every one its own process, low-bit dummy weights
# generated directly in their format, text only (pdserve.vision.enabled=false: the fp32 vision
# tower would cost each worker ~2.9 GiB). First the single-process engine answers a 128-token
# prompt in the same mode (alone, so the two never share the machine's memory), then the cluster
# answers the same prompt through the router; the script prints resident memory per process,
# time to first token and decode speed of both, and fails unless the greedy tokens are equal.
#   scripts/fullsize/local.sh                     # int2-mixed, 2 expert shards, 16 tokens
#   scripts/fullsize/local.sh int4 3 32           # MODE SHARDS TOKENS
#   REUSE_REFERENCE=1 scripts/fullsize/local.sh  # keep the last single-process answer (same args)
# The single-process engine creates each expert's session at its first use, so its time to first
# token includes that; the cluster's shards do the same. The KV handoff's bound is raised
# (pdserve.kv.transfer-timeout): the KV streams out while the prompt is prefilled, which at this
# size on 2 cores takes minutes, and so is the router's stream-silence bound (a decode step here
# takes seconds, longer than the default 10 s when a shard makes its sessions). Output: the table on stdout, target/fullsize/local-MODE.json.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MODE="${1:-int2-mixed}"
SHARDS="${2:-2}"
TOKENS="${3:-16}"
PRESET=ernie-4.5-vl-28b-a3b
OUT="$ROOT/target/fullsize"
mkdir -p "$OUT"
PD="$ROOT/bin/pdserve"
"$PD" --version >/dev/null # builds the jar once, before anything is timed
export PDSERVE_SKIP_BUILD=1
MODEL=(--preset "$PRESET" --quantization "$MODE" --low-bit-dummy-weights)
# 128 prompt ids from a fixed seed, away from the special tokens at the bottom of the vocabulary
IDS="$(awk 'BEGIN { srand(7); for (i = 0; i < 128; i++) printf "%s%d", (i ? "," : ""), 1000 + int(rand() * 90000) }')"
echo "full-size local run, $MODE, $SHARDS expert shards, $TOKENS tokens, $(date -u +%FT%TZ)," \
  "load $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores," \
  "$(awk '/MemAvailable/ {printf "%.1f GiB available", $2 / 1048576}' /proc/meminfo)"

echo "== single-process engine"
if [[ "${REUSE_REFERENCE:-0}" == "1" && -s "$OUT/ref-$MODE.json" && -s "$OUT/ref-maxrss-kb" ]]; then
  echo "(REUSE_REFERENCE=1: the reference of the last run, $OUT/ref-$MODE.json)"
else
  /usr/bin/time -f "%M" -o "$OUT/ref-maxrss-kb" \
    "$PD" generate --local "${MODEL[@]}" --prompt-ids "$IDS" --max-tokens "$TOKENS" --ignore-eos \
    --json >"$OUT/ref-$MODE.json"
fi
REF_RSS_KB="$(tail -1 "$OUT/ref-maxrss-kb")"

echo "== pdserve local"
READY="$OUT/local-ready"
rm -f "$READY"
"$PD" local "${MODEL[@]}" --experts "$SHARDS" --kv-budget 512m --node-heap 1g \
  --set pdserve.vision.enabled=false --set pdserve.kv.transfer-timeout=30m \
  --set pdserve.router.stream-silence-timeout=10m --start-timeout 1200 --ready-file "$READY" \
  >"$OUT/local-$MODE.log" 2>&1 &
LOCAL=$!
cleanup() {
  if kill -0 "$LOCAL" 2>/dev/null; then
    kill -TERM "$LOCAL" 2>/dev/null || true
    wait "$LOCAL" 2>/dev/null || true
  fi
}
trap cleanup EXIT
START=$(date +%s)
until [[ -s "$READY" ]]; do
  if ! kill -0 "$LOCAL" 2>/dev/null; then
    echo "pdserve local exited before it was ready; its log:" >&2
    tail -40 "$OUT/local-$MODE.log" >&2
    exit 1
  fi
  sleep 5
done
echo "ready after $(($(date +%s) - START)) s"
ROUTER="$(head -1 "$READY")"
"$PD" generate --router "$ROUTER" --prompt-ids "$IDS" --max-tokens "$TOKENS" --ignore-eos \
  --timeout 1200 --json >"$OUT/cluster-$MODE.json"

# resident memory of every node process (children of `pdserve local`), by the role in its command
NODES="[]"
for pid in $(pgrep -P "$LOCAL"); do
  cmd=" $(tr '\0' ' ' <"/proc/$pid/cmdline" || true) "
  case "$cmd" in
    *" worker "*) role="$(sed -E 's/.* --role ([a-z]+) .*/\1/' <<<"$cmd")" ;;
    *" expert "*) role=expert ;;
    *" router "*) role=router ;;
    *) role=node ;;
  esac
  rss="$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")"
  hwm="$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")"
  NODES="$(jq -c --arg r "$role" --argjson rss "$rss" --argjson hwm "$hwm" --argjson pid "$pid" \
    '. + [{role: $r, pid: $pid, resident_kib: $rss, peak_kib: $hwm}]' <<<"$NODES")"
done
cleanup
trap - EXIT

jq -n --slurpfile ref "$OUT/ref-$MODE.json" --slurpfile cl "$OUT/cluster-$MODE.json" \
  --argjson nodes "$NODES" --argjson refkb "$REF_RSS_KB" --arg mode "$MODE" --argjson shards "$SHARDS" '
  def decode_tps(x): ((x.usage.completion_tokens - 1) / ((x.timings.total_ms - x.timings.time_to_first_token_ms) / 1000));
  {mode: $mode, expert_shards: $shards, prompt_tokens: $ref[0].usage.prompt_tokens,
   tokens_equal: ($ref[0].token_ids == $cl[0].token_ids),
   reference: {peak_resident_kib: $refkb, ttft_ms: $ref[0].timings.time_to_first_token_ms,
               decode_tokens_per_s: decode_tps($ref[0]), token_ids: $ref[0].token_ids},
   cluster: {nodes: $nodes, total_resident_kib: ($nodes | map(.resident_kib) | add),
             ttft_ms: $cl[0].timings.time_to_first_token_ms,
             decode_tokens_per_s: decode_tps($cl[0]), token_ids: $cl[0].token_ids}}' \
  >"$OUT/local-$MODE.json"
jq -r '
  "reference: peak resident \(.reference.peak_resident_kib / 1048576 * 10 | round / 10) GiB, TTFT \(.reference.ttft_ms) ms, decode \(.reference.decode_tokens_per_s * 100 | round / 100) tok/s",
  (.cluster.nodes[] | "cluster \(.role) (pid \(.pid)): resident \(.resident_kib / 1048576 * 10 | round / 10) GiB, peak \(.peak_kib / 1048576 * 10 | round / 10) GiB"),
  "cluster: resident in all \(.cluster.total_resident_kib / 1048576 * 10 | round / 10) GiB, TTFT \(.cluster.ttft_ms) ms, decode \(.cluster.decode_tokens_per_s * 100 | round / 100) tok/s",
  "greedy tokens equal: \(.tokens_equal)"' "$OUT/local-$MODE.json"
jq -e '.tokens_equal' "$OUT/local-$MODE.json" >/dev/null
