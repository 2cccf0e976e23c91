package native

import (
	"bytes"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/services/gateway/internal/ingest"
)

// ClicksConfig configures POST /v1/clicks.
type ClicksConfig struct {
	// AllowAnonymous accepts events that present no Sluice key: the
	// dejavu agent posts same-origin without one.
	AllowAnonymous bool `yaml:"allow_anonymous" env:"ALLOW_ANONYMOUS"`
}

// handleClicks serves POST /v1/clicks, the body the dejavu browser agent
// (seed 000) posts to its proxy: {"event": {type, info}} as dejavu.js
// wraps it for HEC, or the bare {type, info}; also an array or NDJSON of
// them. The clicks adapter unwraps the envelope (quirk event_wrapper).
func (n *Native) handleClicks(c echo.Context) error {
	src, err := n.source(c, event.Clicks, n.cfg.Clicks.AllowAnonymous)
	if err != nil {
		return err
	}
	r := c.Request()
	mt, _, err := mediaType(r)
	if err != nil {
		return err
	}
	ndjson := false
	switch mt {
	case "", "application/json", "text/plain", "application/octet-stream":
	case "application/x-ndjson", "application/jsonl", "application/x-jsonlines", "application/jsonlines":
		ndjson = true
	default:
		return errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type %q is not supported (send JSON)", mt)
	}
	bid, err := n.batchID(c)
	if err != nil {
		return err
	}
	body, release, err := n.s.ReadBody(r)
	if err != nil {
		return err
	}
	defer release()
	if len(bytes.TrimSpace(body)) == 0 {
		return errorf(http.StatusBadRequest, "empty_body", "the body is empty")
	}
	items, err := n.s.Split(body, ndjson)
	if err != nil {
		var tm ingest.ErrTooManyEvents
		if asTooMany(err, &tm) {
			return errorf(http.StatusRequestEntityTooLarge, event.ReasonTooManyEvents, "%v", err)
		}
		items = []ingest.Item{ingest.RejectedItem(body, event.Reject(event.ReasonInvalidJSON, "", "%v", err))}
	}
	res := n.s.Ingest(ingestCtx(c), &ingest.Request{
		Family: event.Clicks, Endpoint: "/v1/clicks", SourceKey: src.id, Strict: src.strict,
		BatchID: bid, Meta: n.s.Meta(c), Items: items,
	})
	return n.replyEvents(c, res)
}
