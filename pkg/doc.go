// Package pkg is the root of Sluice's shared module. Its sub-packages hold the
// contracts and plumbing every service uses: event, avro, kafka, config,
// logging, telemetry, app and pipeline. See docs/package-layout.md.
package pkg
