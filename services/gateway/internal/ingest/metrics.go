package ingest

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/pkg/event"
)

type metrics struct {
	requests *prometheus.CounterVec
	events   *prometheus.CounterVec
	unknown  *prometheus.CounterVec
	dropped  *prometheus.CounterVec
	produce  prometheus.Histogram
	duration *prometheus.HistogramVec

	refusedRequests *prometheus.CounterVec
	refusedEvents   *prometheus.CounterVec
	dlqFailures     *prometheus.CounterVec
	kafkaAvailable  prometheus.Gauge
	circuitOpens    prometheus.Counter
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
	m.refusedRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_gateway_refused_requests_total",
		Help: "Requests refused by backpressure (overloaded, kafka_unavailable, shutting_down: 503) or by a source key's rate limit (rate_limited: 429), by reason.",
	}, []string{"reason"})
	m.refusedEvents = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_gateway_refused_events_total",
		Help: "Events in requests refused after their body was read (rate_limited, overloaded, kafka_unavailable), by family and reason; requests refused before their body is read are counted in sluice_gateway_refused_requests_total only.",
	}, []string{"family", "reason"})
	m.dlqFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_gateway_dlq_write_failures_total",
		Help: "Rejected events whose dead letter could not be written to sluice.dlq, by family.",
	}, []string{"family"})
	m.kafkaAvailable = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "sluice_gateway_kafka_available",
		Help: "1 while the gateway's Kafka circuit is closed (requests are taken), 0 while it is open (503).",
	})
	m.circuitOpens = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sluice_gateway_kafka_circuit_opens_total",
		Help: "Times the gateway found Kafka unreachable and began refusing requests.",
	})
	for _, c := range []prometheus.Collector{m.requests, m.events, m.unknown, m.dropped, m.produce, m.duration,
		m.refusedRequests, m.refusedEvents, m.dlqFailures, m.kafkaAvailable, m.circuitOpens} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
		}
	}
	return m, nil
}

// registerGauges exports the in-flight counts and the verdicts of the
// guard.
func registerGauges(reg prometheus.Registerer, g *guard) error {
	for _, c := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sluice_gateway_inflight_requests",
			Help: "Requests holding a processing slot (backpressure.max_inflight_requests bounds it).",
		}, func() float64 { return float64(g.processing.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sluice_gateway_inflight_bytes",
			Help: "Request body bytes held, as sent and as inflated (backpressure.max_inflight_bytes bounds it).",
		}, func() float64 { return float64(g.bytes.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sluice_gateway_waiting_requests",
			Help: "Requests whose body is in, waiting for a processing slot (backpressure.queue_timeout; the queue's length follows backpressure.saturation_latency).",
		}, func() float64 { return float64(g.waiting.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sluice_gateway_awaiting_acks_requests",
			Help: "Requests whose records are handed to the producer, holding an ack slot until the brokers' acks are in (backpressure.max_awaiting_acks bounds it).",
		}, func() float64 { return float64(g.awaitingAcks()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sluice_gateway_sched_latency_p99_seconds",
			Help: "99th percentile of how long the gateway's goroutines waited, runnable, for a CPU over the last quarter second in which any ran: what backpressure.saturation_latency is compared with (0 when the measure is off).",
		}, func() float64 { return g.cpu.LastP99() }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sluice_gateway_cpu_saturated",
			Help: "1 while the goroutines' scheduling latency says the CPU is saturated (backpressure.saturation_latency), 0 while it keeps up; with requests turned away, it makes the overload cut (sluice_gateway_overload_cut).",
		}, oneIf(func() bool { return g.cpu.Saturated() })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sluice_gateway_overload_cut",
			Help: "1 while the overload cut holds (the CPU is saturated and the processing bound turned a request away in the last two seconds): the processing queue is a quarter of the slots and a quarter of the ack slots serve; 0 otherwise.",
		}, oneIf(g.cut)),
	} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
		}
	}
	return nil
}

// unknownInc counts an event of a type its adapter does not know (m may be
// nil: checkFast builds without metrics).
func (m *metrics) unknownInc(f event.Family) {
	if m != nil {
		m.unknown.WithLabelValues(string(f)).Inc()
	}
}

// oneIf is a gauge function for a verdict: 1 while it holds, else 0.
func oneIf(verdict func() bool) func() float64 {
	return func() float64 {
		if verdict() {
			return 1
		}
		return 0
	}
}
