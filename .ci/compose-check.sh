#!/usr/bin/env bash
# Validate docker-compose.yml without a Docker engine:
#  1. the Compose syntax and model, with compose-go (the loader `docker compose
#     config` is built on; .ci/composecheck, its own Go module);
#  2. Debian's docker-compose (1.29) `config`, when installed, reported only:
#     it predates parts of the Compose Specification the file may use
#     (top-level name, configs.content);
#  3. the file against the services' configuration (TestComposeFileMatchesConfig,
#     also part of make test).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -f docker-compose.yml ]]; then
  echo "compose-check: no docker-compose.yml; nothing to check"
  exit 0
fi
(cd .ci/composecheck && GOWORK=off go run . ../../docker-compose.yml)
if command -v docker-compose >/dev/null 2>&1; then
  if out="$(docker-compose -f docker-compose.yml config -q 2>&1)"; then
    echo "compose-check: $(docker-compose version --short 2>/dev/null) config: valid"
  else
    echo "compose-check: note: $(docker-compose version --short 2>/dev/null) config refuses the file (Compose Spec features it predates):"
    echo "$out" | sed 's/^/  /' | head -n 8
  fi
fi
go test -count=1 -run '^TestComposeFileMatchesConfig$' ./services/standalone/
