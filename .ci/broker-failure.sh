#!/usr/bin/env bash
# make test-broker-failure: start a 3-node Apache Kafka cluster (KRaft,
# replication factor 3, min.insync.replicas 2), run TestBrokerFailure
# (services/standalone/brokerfailure_integration_test.go) against it, and
# stop the cluster whatever happens. 2 to 3 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
.ci/kafka.sh fetch
cleanup() {
  local rc=$?
  if [[ $rc -ne 0 ]]; then
    echo "== broker failure test failed (exit $rc); the nodes' logs:"
    .ci/kafka.sh logs 40 || true
  fi
  .ci/kafka.sh down || true
  echo "== broker failure test: $(($(date +%s) - t0))s in all"
  exit "$rc"
}
trap cleanup EXIT
.ci/kafka.sh up --brokers 3
eval "$(.ci/kafka.sh env)"
export SLUICE_BROKER_FAILURE_TEST=1
.ci/gotest.sh "broker failure test on 3 nodes ($KAFKA_BROKERS)" -count=1 -timeout 15m \
  -run '^TestBrokerFailure$' ./services/standalone/
