package native

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/services/gateway/internal/adapter"
	"github.com/sluicehq/sluice/services/gateway/internal/ingest"
)

// CrowdFrameConfig configures POST /v1/crowdframe.
type CrowdFrameConfig struct {
	// AllowAnonymous accepts messages that present no Sluice key: the
	// Crowd Frame client sends none to its logging endpoint.
	AllowAnonymous bool `yaml:"allow_anonymous" env:"ALLOW_ANONYMOUS"`
}

// handleCrowdFrame serves POST /v1/crowdframe, the Crowd Frame logging
// endpoint (seed 003). The body is the logger's message, either as raw
// JSON (old and custom deployments) or form-encoded as MessageBody=<json>
// (the current client, written for SQS).
//
// The form is recognised by its Content-Type
// (application/x-www-form-urlencoded), not by the Crowd Frame Lambda's test
// "the body contains '='", which misreads any raw JSON message holding an
// '=' (in a query, a text or a URL) as a form.
//
// Like the Lambda, the gateway sets server_time (epoch ms) on each message,
// replacing any the client sent.
func (n *Native) handleCrowdFrame(c echo.Context) error {
	src, err := n.source(c, event.CrowdFrame, n.cfg.CrowdFrame.AllowAnonymous)
	if err != nil {
		return err
	}
	r := c.Request()
	mt, _, err := mediaType(r)
	if err != nil {
		return err
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
	items, err := n.crowdFrameItems(body, mt)
	if err != nil {
		return err
	}
	serverTime := json.Number(strconv.FormatInt(n.now().UnixMilli(), 10))
	res := n.s.Ingest(ingestCtx(c), &ingest.Request{
		Family: event.CrowdFrame, Endpoint: "/v1/crowdframe", SourceKey: src.id, Strict: src.strict,
		BatchID: bid, Meta: n.s.Meta(c), Items: items,
		Adapt: func(in *adapter.Input) (*adapter.Output, *event.Rejection) {
			_, had := in.Value["server_time"]
			in.Value["server_time"] = serverTime
			out, rj := adapter.CrowdFrame{}.Adapt(in)
			if rj == nil && had {
				out.Quirks = append(out.Quirks, "server_time_replaced")
			}
			return out, rj
		},
	})
	return n.replyEvents(c, res)
}

// crowdFrameItems frames a Crowd Frame body by its media type.
func (n *Native) crowdFrameItems(body []byte, mt string) ([]ingest.Item, error) {
	switch mt {
	case "application/x-www-form-urlencoded":
		return []ingest.Item{crowdFrameForm(body)}, nil
	case "", "application/json", "text/plain", "application/octet-stream":
		if len(bytes.TrimSpace(body)) == 0 {
			return nil, errorf(http.StatusBadRequest, "empty_body", "the body is empty")
		}
		items, err := n.s.Split(body, false)
		if err != nil {
			var tm ingest.ErrTooManyEvents
			if asTooMany(err, &tm) {
				return nil, errorf(http.StatusRequestEntityTooLarge, event.ReasonTooManyEvents, "%v", err)
			}
			// Not JSON at all: one event that cannot be read.
			return []ingest.Item{ingest.RejectedItem(body, event.Reject(event.ReasonInvalidJSON, "", "%v", err))}, nil
		}
		return items, nil
	}
	return nil, errorf(http.StatusUnsupportedMediaType, "unsupported_media_type",
		"Content-Type %q is not supported (send JSON, or a form with MessageBody)", mt)
}

// crowdFrameForm reads the MessageBody of a form-encoded message.
func crowdFrameForm(body []byte) ingest.Item {
	vals, err := url.ParseQuery(string(body))
	if err != nil {
		return ingest.RejectedItem(body, event.Reject(event.ReasonInvalidField, "MessageBody", "the form body does not parse: %v", err))
	}
	msgs, ok := vals["MessageBody"]
	if !ok || len(msgs) == 0 {
		return ingest.RejectedItem(body, event.Reject(event.ReasonMissingField, "MessageBody", "a form-encoded message needs MessageBody=<json>"))
	}
	if len(msgs) > 1 {
		return ingest.RejectedItem(body, event.Reject(event.ReasonInvalidField, "MessageBody", "the form carries %d MessageBody fields, expected one", len(msgs)))
	}
	return ingest.NewItem([]byte(msgs[0]), "form_message_body")
}
