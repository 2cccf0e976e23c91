#!/usr/bin/env bash
# Regenerates sluice.min.js, the file the gateway serves at /sdk/sluice.js,
# from sluice.js. esbuild is a development tool fetched from npm by npx;
# nothing of it ships. Run it after every change to sluice.js: the Go test
# TestMinifiedIsFresh compares the source hash in the header line.
set -euo pipefail
cd "$(dirname "$0")"
ESBUILD_VERSION=0.25.12
sum=$(sha256sum sluice.js | cut -d' ' -f1)
min=$(npx --yes "esbuild@${ESBUILD_VERSION}" sluice.js --minify --legal-comments=none --log-level=warning)
printf '/*! sluice.js, the Sluice browser agent | minified from sluice.js sha256:%s */\n%s\n' "$sum" "$min" > sluice.min.js
printf 'sluice.min.js: %d bytes, %d gzipped\n' "$(wc -c < sluice.min.js)" "$(gzip -9c sluice.min.js | wc -c)"
