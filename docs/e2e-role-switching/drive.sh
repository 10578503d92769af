#!/usr/bin/env bash
# Drives phase A (800-token prompts, 4 output tokens, Poisson RATE_A req/s, 45 s) then phase B
# (16-token prompts, 300 output tokens, 48 concurrent, DUR_B s) against the router in /tmp/e2e/ready,
# while poll.sh logs admin status. Results in $D.
set -u
HERE=$(cd "$(dirname "$0")" && pwd); cd "$HERE/../.."; mkdir -p /tmp/e2e; export PDSERVE_SKIP_BUILD=1
R=$(head -1 /tmp/e2e/ready); D=${D:-/tmp/e2e/run}; RATE_A=${RATE_A:-10}; DUR_B=${DUR_B:-90}
rm -rf $D /tmp/e2e/stop; mkdir -p $D
echo idle > /tmp/e2e/phase
"$HERE/poll.sh" "$R" $D/timeline.txt & POLL=$!
date +%s.%N | cut -c1-14 > $D/t0
sleep 6
echo A > /tmp/e2e/phase
bin/pdserve bench --router "$R" --input-len 800 --output-len 4 --ignore-eos --request-rate $RATE_A --duration 45 --seed 1 --json $D/phase-a.json > $D/phase-a.txt 2>&1
echo B > /tmp/e2e/phase
bin/pdserve bench --router "$R" --input-len 16 --output-len 300 --ignore-eos --max-concurrency 48 --request-rate inf --duration $DUR_B --seed 2 --json $D/phase-b.json > $D/phase-b.txt 2>&1
echo after > /tmp/e2e/phase
sleep 20
touch /tmp/e2e/stop; wait $POLL
echo done > $D/done
