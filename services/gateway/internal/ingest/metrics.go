package ingest

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests *prometheus.CounterVec
	events   *prometheus.CounterVec
	unknown  *prometheus.CounterVec
	dropped  *prometheus.CounterVec
	produce  prometheus.Histogram
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_gateway_requests_total",
			Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_gateway_events_total",
			Help: "Events by family and outcome (accepted, rejected, failed) and reason.",
		}, []string{"family", "outcome", "reason"}),
		unknown: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_gateway_unknown_type_events_total",
			Help: "Events of a type the adapter does not know, kept generically.",
		}, []string{"family"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_gateway_dropped_events_total",
			Help: "Events deliberately not stored by a configured rule, by family and rule.",
		}, []string{"family", "rule"}),
		produce: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sluice_gateway_produce_seconds",
			Help:    "Time from produce to the broker's ack of a request's events.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sluice_gateway_request_seconds",
			Help:    "Request handling time by route.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"route"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.events, m.unknown, m.dropped, m.produce, m.duration} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
		}
	}
	return m, nil
}
