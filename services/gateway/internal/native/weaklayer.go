package native

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/services/gateway/internal/adapter"
	"github.com/sluicehq/sluice/services/gateway/internal/ingest"
)

// weaklayer is the state of the Weaklayer endpoints.
type weaklayer struct {
	verifiers []installVerifier
	groups    map[uuid.UUID]bool
	tok       *tokens
}

func newWeaklayer(c WeaklayerConfig, now func() time.Time) (*weaklayer, error) {
	w := &weaklayer{groups: map[uuid.UUID]bool{}, tok: &tokens{ttl: c.TokenTTL, now: now}}
	for _, k := range c.InstallKeys {
		v, err := k.parse()
		if err != nil {
			return nil, err
		}
		w.verifiers = append(w.verifiers, v)
		w.groups[v.group] = true
	}
	for _, s := range c.SigningSecrets {
		b, err := signingKey(s)
		if err != nil {
			return nil, err
		}
		w.tok.keys = append(w.tok.keys, b)
	}
	return w, nil
}

// installResponse is the Weaklayer gateway's /install reply; times are
// epoch microseconds, Weaklayer's convention.
type installResponse struct {
	Token     string `json:"token"`
	Sensor    string `json:"sensor"`
	ExpiresAt int64  `json:"expiresAt"`
	IssuedAt  int64  `json:"issuedAt"`
}

// parseInstallRequest reads {key: {group, secret, checksum}, label}.
func parseInstallRequest(body []byte) (installKey, string, error) {
	var req struct {
		Key *struct {
			Group    *string `json:"group"`
			Secret   *string `json:"secret"`
			Checksum *string `json:"checksum"`
		} `json:"key"`
		Label *string `json:"label"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil || dec.More() {
		return installKey{}, "", errors.New("the body is not an install request: want {\"key\": {\"group\", \"secret\", \"checksum\"}, \"label\"}")
	}
	if req.Key == nil || req.Key.Group == nil || req.Key.Secret == nil || req.Key.Checksum == nil {
		return installKey{}, "", errors.New("key: group, secret and checksum are required")
	}
	var k installKey
	var err error
	if k.Group, err = uuid.Parse(*req.Key.Group); err != nil {
		return k, "", errors.New("key.group: not a UUID")
	}
	if k.Secret, err = base64.StdEncoding.DecodeString(*req.Key.Secret); err != nil || len(k.Secret) != wlSecretBytes {
		return k, "", fmt.Errorf("key.secret: must be standard base64 of %d bytes", wlSecretBytes)
	}
	if k.Checksum, err = base64.StdEncoding.DecodeString(*req.Key.Checksum); err != nil || len(k.Checksum) != 32 {
		return k, "", errors.New("key.checksum: must be standard base64 of 32 bytes")
	}
	label := ""
	if req.Label != nil {
		label = *req.Label
	}
	return k, label, nil
}

// bearer reads "Authorization: Bearer <token>": present is false without
// the header, ok is false when the header has another form.
func bearer(r *http.Request) (tok string, present, ok bool) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", false, true
	}
	scheme, rest, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", true, false
	}
	return strings.TrimSpace(rest), true, true
}

// requireJSON enforces the Weaklayer API's Content-Type: application/json
// (415 otherwise, as its gateway answers).
func requireJSON(r *http.Request) error {
	mt, _, err := mediaType(r)
	if err != nil {
		return err
	}
	if mt != "application/json" {
		return errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "the Weaklayer API takes Content-Type: application/json")
	}
	return nil
}

// handleInstall serves POST /install: a sensor presents its group install
// key (and, to renew, the token it holds); the gateway checks the key
// against the group's salted hash, issues a signed short-lived token for
// the sensor, and itself emits the Install event (label, isNewInstall,
// userAgent) through the pipeline before answering, so no token is issued
// for an install that was not stored.
func (n *Native) handleInstall(c echo.Context) error {
	r := c.Request()
	c.Response().Header().Set("Cache-Control", "no-store")
	c.Response().Header().Set("Pragma", "no-cache")
	if err := requireJSON(r); err != nil {
		return err
	}
	body, release, err := n.s.ReadBody(r)
	if err != nil {
		return err
	}
	defer release()
	key, label, err := parseInstallRequest(body)
	if err != nil {
		return errorf(http.StatusBadRequest, "invalid_install_request", "%v", err)
	}
	tok, present, ok := bearer(r)
	if !ok {
		return errorf(http.StatusBadRequest, "invalid_authorization", "Authorization must be \"Bearer <token>\"")
	}
	if !key.verify(n.wl.verifiers) {
		return errorf(http.StatusUnauthorized, "invalid_install_key", "the install key is not valid for group %s", key.Group)
	}
	// Renewal: a valid token of the same group keeps its sensor id. An
	// invalid or expired one, or one of another group, makes a new install,
	// as the Weaklayer gateway does.
	sensor, renewal := uuid.Nil, false
	if present {
		if g, s, err := n.wl.tok.verify(tok); err == nil && g == key.Group {
			sensor, renewal = s, true
		}
	}
	if !renewal {
		sensor = uuid.New()
	}
	signed, iat, exp, err := n.wl.tok.issue(key.Group, sensor)
	if err != nil {
		n.log.Error("issuing a sensor token", zap.Error(err))
		return errorf(http.StatusInternalServerError, "internal", "the token could not be issued")
	}
	meta := n.s.Meta(c)
	install := map[string]any{
		"type":         "Install",
		"time":         meta.ReceivedAt.UnixMicro(),
		"sensor":       sensor.String(),
		"group":        key.Group.String(),
		"label":        label,
		"isNewInstall": !renewal,
		"userAgent":    meta.UserAgent,
	}
	raw, err := marshalJSON(install)
	if err != nil {
		return errorf(http.StatusBadRequest, "invalid_install_request", "the label cannot be rendered: %v", err)
	}
	res := n.s.Ingest(ingestCtx(c), &ingest.Request{
		Family: event.Weaklayer, Endpoint: "/install", SourceKey: "weaklayer:" + key.Group.String(),
		Meta: meta, Items: []ingest.Item{ingest.NewItem(raw)},
	})
	if res.Accepted != 1 {
		if res.Unavailable != nil || !allRefused(res) {
			n.setRetryAfter(c, res)
			return errorf(http.StatusServiceUnavailable, "unavailable", "the install could not be recorded right now; retry")
		}
		return n.replyEvents(c, res)
	}
	return c.JSON(http.StatusOK, installResponse{
		Token: signed, Sensor: sensor.String(), ExpiresAt: exp.UnixMicro(), IssuedAt: iat.UnixMicro(),
	})
}

// handleWeaklayerEvents serves POST /events: a gzipped JSON array of sensor
// events (415 without Content-Encoding: gzip, as Weaklayer answers since
// 2020-10), authenticated by the sensor's Bearer token. Sensor and group
// come from the token and never from the body.
func (n *Native) handleWeaklayerEvents(c echo.Context) error {
	r := c.Request()
	if err := requireJSON(r); err != nil {
		return err
	}
	tok, present, ok := bearer(r)
	switch {
	case !present:
		return errorf(http.StatusUnauthorized, "missing_token", "no token: send Authorization: Bearer <token from /install>")
	case !ok:
		return errorf(http.StatusUnauthorized, "invalid_authorization", "Authorization must be \"Bearer <token>\"")
	}
	group, sensor, err := n.wl.tok.verify(tok)
	if err != nil {
		code := "invalid_token"
		if errors.Is(err, errTokenExpired) {
			code = "token_expired"
		}
		return errorf(http.StatusUnauthorized, code, "%v; renew it on /install", err)
	}
	if !n.wl.groups[group] {
		return errorf(http.StatusUnauthorized, "unknown_group", "the token's group %s has no install key any more", group)
	}
	if enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc != "gzip" && enc != "x-gzip" {
		return errorf(http.StatusUnsupportedMediaType, "gzip_required", "the events body must be gzip-compressed (Content-Encoding: gzip)")
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
	var items []ingest.Item
	if t := bytes.TrimSpace(body); len(t) == 0 || t[0] != '[' {
		items = []ingest.Item{ingest.RejectedItem(body, event.Reject(event.ReasonNotObject, "", "the events body must be a JSON array"))}
	} else if items, err = n.s.Split(body, false); err != nil {
		var tm ingest.ErrTooManyEvents
		if asTooMany(err, &tm) {
			return errorf(http.StatusRequestEntityTooLarge, event.ReasonTooManyEvents, "%v", err)
		}
		items = []ingest.Item{ingest.RejectedItem(body, event.Reject(event.ReasonInvalidJSON, "", "%v", err))}
	}
	if len(items) == 0 {
		return c.JSON(http.StatusOK, &ingest.Result{Errors: []event.Rejection{}})
	}
	g, s := group.String(), sensor.String()
	res := n.s.Ingest(ingestCtx(c), &ingest.Request{
		Family: event.Weaklayer, Endpoint: "/events", SourceKey: "weaklayer:" + g,
		BatchID: bid, Meta: n.s.Meta(c), Items: items,
		Adapt: func(in *adapter.Input) (*adapter.Output, *event.Rejection) {
			return adapter.Weaklayer{}.AdaptFromSensor(in, s, g)
		},
	})
	return n.replyEvents(c, res)
}
