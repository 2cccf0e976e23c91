// Package sinkfile consumes every sluice.enriched.<family> topic and writes each event as a JSON line to files per family and date that are published (fsynced, renamed to names carrying their offsets) before their offsets are committed, so that the output holds every event exactly once.
package sinkfile
