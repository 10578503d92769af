#!/usr/bin/env bash
# poll admin status every ~2 s; one line per poll: epoch-seconds phase node:role/state/epoch[*coordinator] q=queued r=running
R=$1; OUT=$2; PH=/tmp/e2e/phase
cd "$(dirname "$0")/../.."
while [[ ! -f /tmp/e2e/stop ]]; do
  t=$(date +%s.%N | cut -c1-14)
  j=$(PDSERVE_SKIP_BUILD=1 PDSERVE_JAVA_OPTS="-XX:TieredStopAtLevel=1 -XX:+UseSerialGC" bin/pdserve admin status --router "$R" --json 2>/dev/null)
  line=$(echo "$j" | python3 -c 'import json,sys
a=json.load(sys.stdin)
print(" ".join("%s:%s/%s/e%d%s q=%d r=%d"%(n["id"],n["role"],n["state"],n["epoch"],"*" if n.get("coordinator") else "",n["queued_prompt_tokens"],n["running_sequences"]) for n in a if n["role"]!="router"))' 2>/dev/null)
  echo "$t $(cat $PH 2>/dev/null) $line" >> "$OUT"
  sleep 2
done
