#!/usr/bin/env bash
# .ci/gotest.sh LABEL GO-TEST-ARGS...: go test -v with a summary at the end:
# the number of tests and subtests passed, failed and skipped (subtests
# included in the counts), and the Kafka broker version when KAFKA_VERSION
# is set. Exits with go test's status.
set -uo pipefail
label="$1"
shift
log="$(mktemp "${TMPDIR:-/tmp}/sluice-gotest.XXXXXX")"
trap 'rm -f "$log"' EXIT
t0=$(date +%s)
go test -v "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
passed=$(grep -cE '^\s*--- PASS' "$log")
failed=$(grep -cE '^\s*--- FAIL' "$log")
skipped=$(grep -cE '^\s*--- SKIP' "$log")
echo
echo "== $label: go test exited $rc after $(($(date +%s) - t0))s${KAFKA_VERSION:+ (Apache Kafka $KAFKA_VERSION)}"
if [[ $failed -gt 0 ]]; then
  echo "failed:"
  grep -E '^\s*--- FAIL' "$log" | sed 's/^/  /'
fi
if [[ $rc -ne 0 ]] && grep -qE '^(panic:|FAIL\s.*\[build failed\]|.*\[setup failed\])' "$log"; then
  echo "go test reported a panic or a build failure above"
fi
top=$(grep -cE '^--- (PASS|FAIL)' "$log")
echo "$top tests ran ($((passed + failed)) with subtests)"
echo "$passed passed, $failed failed, $skipped skipped"
exit "$rc"
