# Sluice — run `make help` for the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

MODULES   := pkg schemas services/gateway services/enricher services/sink-file services/sink-hec services/standalone
PKGS      := $(addsuffix /...,$(addprefix ./,$(MODULES)))
BIN       := bin
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X github.com/sluicehq/sluice/services/gateway.Version=$(VERSION) \
             -X github.com/sluicehq/sluice/services/enricher.Version=$(VERSION) \
             -X github.com/sluicehq/sluice/services/sink-file.Version=$(VERSION) \
             -X github.com/sluicehq/sluice/services/sink-hec.Version=$(VERSION)
GOTEST    ?= go test
FUZZTIME  ?= 60s
BENCHTIME ?= 20s

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*##"; printf "Targets:\n"} /^[a-zA-Z0-9_-]+:.*##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build every binary into ./bin
	@mkdir -p $(BIN)
	go build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./services/gateway/cmd/... ./services/enricher/cmd/... ./services/sink-file/cmd/... ./services/sink-hec/cmd/... ./services/standalone/cmd/... ./services/standalone/tools/...

.PHONY: run
run: build ## Run the whole pipeline in one process (embedded Kafka and registry, data in ./data)
	$(BIN)/sluice-standalone

.PHONY: test
test: ## Run every unit and in-process integration test (no external servers)
	$(GOTEST) -race -count=1 -timeout 20m $$(go list $(PKGS) | grep -v /tools/sluice-drill)
	@# The drills re-execute the test binary as a kfake broker and a gateway in
	@# child processes. Built with -race, the SIGTERM drill loses its broker
	@# child (connection refused; not yet diagnosed), so the drills run
	@# without the race detector.
	$(GOTEST) -count=1 -timeout 10m ./services/standalone/tools/sluice-drill/...
	@if command -v node >/dev/null; then node --test services/gateway/internal/web/*.test.js; \
	  else echo "SKIP: node is not installed, so the browser agent's JavaScript unit tests did not run"; fi

.PHONY: test-integration
test-integration: ## Run the integration suite (TestIntegration*) against the broker in KAFKA_BROKERS
	@test -n "$$KAFKA_BROKERS" || { echo "KAFKA_BROKERS is not set (try: make kafka-up; eval \"\$$(.ci/kafka.sh env)\")"; exit 2; }
	.ci/gotest.sh "integration suite against $$KAFKA_BROKERS" -count=1 -timeout 30m -tags integration -run '^TestIntegration' $(PKGS)

.PHONY: kafka-up
kafka-up: ## Start a real Apache Kafka (KRaft, 127.0.0.1:9092; SASL_SSL on :9093); then eval "$$(.ci/kafka.sh env)"
	.ci/kafka.sh up --sasl-tls

.PHONY: kafka-up-3
kafka-up-3: ## Start a 3-node Apache Kafka cluster (RF 3, min ISR 2) on 127.0.0.1:9092,9102,9112
	.ci/kafka.sh up --brokers 3

.PHONY: kafka-down
kafka-down: ## Stop the Kafka started by kafka-up or kafka-up-3
	.ci/kafka.sh down

.PHONY: test-broker-failure
test-broker-failure: ## Kill Kafka nodes under load through the gateway on a 3-node cluster (2 to 3 min)
	.ci/broker-failure.sh

.PHONY: bench
bench: build ## Load-test the standalone gateway against a raw passthrough baseline, then the enricher and the sinks (see docs/benchmarks.md)
	$(BIN)/sluice-bench -duration $(BENCHTIME)
	cd services/enricher && go test -run '^$$' -bench 'BenchmarkEnricher$$|BenchmarkStateMillionKeys' -benchtime 100000x -cpu 1 .
	cd services/sink-file && go test -run '^$$' -bench 'BenchmarkSink' -benchtime 2000000x -timeout 20m .
	cd services/sink-hec && go test -run '^$$' -bench 'BenchmarkSink' -benchtime 1000000x -timeout 20m .

.PHONY: drills drill-kill9 drill-overload drill-broker-down drill-slowloris drill-sigterm
drills: build ## Run every gateway drill, one after the other (about 4 min; docs/benchmarks.md "Drills"); KAFKA_BROKERS: against that broker
	$(BIN)/sluice-drill all

drill-kill9: build ## SIGKILL the gateway 5 times under load: every acknowledged event is in Kafka
	$(BIN)/sluice-drill kill9

drill-overload: build ## Twice the gateway's measured capacity for 30 s: RSS, statuses, p99 of accepted requests
	$(BIN)/sluice-drill overload

drill-broker-down: build ## Stop the broker for 20 s under load: 503 + Retry-After, /readyz, recovery
	$(BIN)/sluice-drill broker-down

drill-slowloris: build ## 500 slow connections, 20 MB bodies, gzip bombs, 10,000-deep JSON
	$(BIN)/sluice-drill slowloris

drill-sigterm: build ## SIGTERM under load: truthful answers, drain, exit; a second signal exits at once
	$(BIN)/sluice-drill sigterm

.PHONY: geoip
geoip: ## Install free IP geo databases (DB-IP city lite, RouteViews/DB-IP ASN; CC BY 4.0) into data/geoip (see docs/enricher.md)
	services/enricher/scripts/install-geoip.sh data/geoip

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (default 60s)
	@set -e; for pkg in $$(go list -f '{{if .TestGoFiles}}{{.Dir}}{{end}}' $(PKGS)); do \
	  for t in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$pkg/*_test.go 2>/dev/null | sed 's/func //'); do \
	    echo "== $$t ($$pkg)"; (cd $$pkg && go test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) .); \
	  done; done

.PHONY: fmt
fmt: ## Format the Go code
	gofmt -w $(MODULES)

.PHONY: lint
lint: ## gofmt check and go vet on every module
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	go vet $(PKGS)

.PHONY: tidy
tidy: ## go mod tidy every module, then go work sync
	@for m in $(MODULES); do (cd $$m && go mod tidy) || exit 1; done
	go work sync

.PHONY: verify-workspace
verify-workspace: ## Build each module on its own (GOWORK=off), as Docker builds do
	@for m in $(MODULES); do (cd $$m && GOWORK=off go build ./...) || exit 1; done

.PHONY: clean
clean: ## Remove build output (keeps ./data)
	rm -rf $(BIN)
