package enricher

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/avro/avrotest"
)

func TestTransientDecodeError(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"not wire format", avro.ErrNotConfluent, false},
		{"unknown schema id", fmt.Errorf("fetching schema id 7: %w", &sr.ResponseError{StatusCode: 404, ErrorCode: 40403}), false},
		{"registry unreachable", fmt.Errorf("fetching schema id 7: %w", &url.Error{Op: "Get", URL: "http://registry", Err: errors.New("connection refused")}), true},
		{"registry error", fmt.Errorf("fetching schema id 7: %w", &sr.ResponseError{StatusCode: 503}), true},
		{"cancelled", fmt.Errorf("fetching schema id 7: %w", context.Canceled), true},
		{"bad body", errors.New("decoding with schema id 1: short buffer"), false},
	} {
		if got := transientDecodeError(tc.err); got != tc.want {
			t.Errorf("%s: transient = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestStopWithoutStart(t *testing.T) {
	_, serde := avrotest.Registry(t)
	svc, err := New(Defaults(), Deps{Serde: serde})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Stop(context.Background()); err != nil {
		t.Fatalf("stop without start: %v", err)
	}
	if err := svc.Stop(context.Background()); err != nil {
		t.Fatalf("second stop: %v", err)
	}
}

func TestNewNeedsSerde(t *testing.T) {
	if _, err := New(Defaults(), Deps{}); err == nil {
		t.Fatal("New without a Serde succeeded")
	}
}
