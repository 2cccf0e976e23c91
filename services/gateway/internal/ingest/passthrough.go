package ingest

import (
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/twmb/franz-go/pkg/kgo"
)

// PassthroughTopic receives the benchmark baseline's records.
const PassthroughTopic = "sluice.bench.passthrough"

// EnablePassthrough mounts POST /bench/passthrough: the benchmark baseline.
// It reads and splits the body like the real endpoint, then produces each
// event's bytes unvalidated and waits for the acks, so `make bench` can
// measure what validation and Avro cost. Never enable it in production.
func (s *Server) EnablePassthrough() {
	s.e.POST("/bench/passthrough", func(c echo.Context) error {
		if _, err := s.authenticate(c, "edx"); err != nil {
			return err
		}
		r := c.Request()
		format, herr := bodyFormat(r)
		if herr != nil {
			return herr
		}
		body, release, herr := s.readBody(r)
		if herr != nil {
			return herr
		}
		defer release()
		items, err := split(body, format, s.opts.Limits.MaxEvents)
		if err != nil {
			return errf(http.StatusBadRequest, "invalid_body", "%v", err)
		}
		recs := make([]*kgo.Record, 0, len(items))
		for _, it := range items {
			if it.blank {
				continue
			}
			recs = append(recs, &kgo.Record{Topic: PassthroughTopic, Value: append([]byte(nil), it.Raw...)})
		}
		errs := s.pipe.producer.ProduceAll(r.Context(), recs)
		res := &Result{Accepted: len(recs), Errors: nil}
		for _, e := range errs {
			if e != nil {
				res.Accepted--
				res.Rejected++
			}
		}
		if res.Rejected > 0 {
			return c.JSON(http.StatusServiceUnavailable, res)
		}
		return c.JSON(http.StatusOK, res)
	})
}
