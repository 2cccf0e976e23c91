// Package enricher consumes every sluice.raw.<family> topic, adds what Sluice knows about each event and produces it to sluice.enriched.<family>.
package enricher
