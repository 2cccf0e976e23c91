// Package sinkhec consumes every sluice.enriched.<family> topic and delivers the events to Splunk HTTP Event Collector in batches, committing offsets only up to what HEC has acknowledged.
package sinkhec
