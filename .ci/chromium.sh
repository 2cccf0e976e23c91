#!/usr/bin/env bash
# Installs Debian's chromium when no Chromium is on the machine, for the
# browser end-to-end test (services/standalone/browser_test.go), which also
# runs this script itself when it finds no browser. Needs root and apt-get;
# prints the browser's path on success.
set -euo pipefail
for b in "${SLUICE_CHROMIUM:-}" /usr/bin/chromium /usr/bin/chromium-browser; do
  if [ -n "$b" ] && [ -x "$b" ]; then echo "$b"; exit 0; fi
done
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "chromium.sh: no Chromium, and no root apt-get to install Debian's chromium" >&2
  exit 1
fi
echo "chromium.sh: installing Debian's chromium" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq chromium >&2
echo /usr/bin/chromium
