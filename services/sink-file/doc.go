// Package sinkfile consumes every sluice.enriched.<family> topic and writes each event as a JSON line to a folder per family and day.
package sinkfile
