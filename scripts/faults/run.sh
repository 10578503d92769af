#!/usr/bin/env bash
# The fault suite on real processes (issue 14): builds once, then runs
# dev.pdserve.launcher.faults.FaultSuite (launcher test code) with the test classpath.
# Arguments go to the suite (--help lists them); results land in --out (default
# launcher/target/faults: faults.md, faults.json, logs/ of every node).
#   scripts/faults/run.sh                       # every fault, 16 streams x 300 tokens, overload
#   scripts/faults/run.sh --faults decode-kill --no-overload
#   scripts/faults/run.sh --faults none --soak 20   # a 20-minute soak at 70 % of capacity
#   scripts/faults/run.sh suspicion [--minutes 3]   # false suspicions at 100 % CPU, freeze detection
#                                                   # (dev.pdserve.launcher.faults.SuspicionRun)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CP_FILE="$ROOT/launcher/target/faults-classpath.txt"
cd "$ROOT"
if [[ "${PDSERVE_SKIP_BUILD:-0}" != "1" || ! -f "$CP_FILE" ]]; then
  # compiles what the launcher's tests need and writes their classpath (surefire's java.class.path)
  mvn -B ${MVN_OFFLINE:--o} -q -pl launcher -am test -Dtest=FaultSuiteClasspath \
    -Dsurefire.failIfNoSpecifiedTests=false -Djazzer.skip=true \
    -Dpdserve.faults.classpath="$CP_FILE" >&2
fi
JAVA_FLAGS=(
  --add-opens=java.base/java.nio=ALL-UNNAMED
  --add-modules=java.se
  --add-exports=java.base/jdk.internal.ref=ALL-UNNAMED
  --add-opens=java.base/java.lang=ALL-UNNAMED
  --add-opens=java.base/sun.nio.ch=ALL-UNNAMED
  --add-opens=java.management/sun.management=ALL-UNNAMED
  --add-opens=jdk.management/com.sun.management.internal=ALL-UNNAMED
  -Djava.util.logging.manager=org.apache.logging.log4j.jul.LogManager
  -Dhazelcast.logging.type=log4j2
  -Dhazelcast.phone.home.enabled=false
)
MAIN=dev.pdserve.launcher.faults.FaultSuite
if [[ "${1:-}" == "suspicion" ]]; then
  MAIN=dev.pdserve.launcher.faults.SuspicionRun
  shift
fi
cd "$ROOT/launcher"
exec java "${JAVA_FLAGS[@]}" -Xmx1g -cp "$(cat "$CP_FILE")" "$MAIN" "$@"
