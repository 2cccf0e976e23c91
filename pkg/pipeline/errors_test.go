package pipeline

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

var errBase = errors.New("base")

func TestClassification(t *testing.T) {
	for _, tc := range []struct {
		name      string
		err       error
		permanent bool
		throttled bool
		after     time.Duration
		msg       string
	}{
		{"nil", nil, false, false, 0, ""},
		{"plain", errBase, false, false, 0, "base"},
		{"permanent", Permanent(errBase), true, false, 0, "base"},
		{"wrapped permanent", fmt.Errorf("writing: %w", Permanent(errBase)), true, false, 0, "writing: base"},
		{"permanent of wrapped", Permanent(fmt.Errorf("decoding: %w", errBase)), true, false, 0, "decoding: base"},
		{"throttle", Throttle(errBase, 3*time.Second), false, true, 3 * time.Second, "base"},
		{"wrapped throttle", fmt.Errorf("hec: %w", Throttle(errBase, time.Second)), false, true, time.Second, "hec: base"},
		{"throttle without delay", Throttle(errBase, 0), false, true, 0, "base"},
		{"joined", errors.Join(errBase, Permanent(errors.New("other"))), true, false, 0, "base\nother"},
		{"permanent throttle", Permanent(Throttle(errBase, time.Minute)), true, true, time.Minute, "base"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsPermanent(tc.err); got != tc.permanent {
				t.Errorf("IsPermanent = %v, want %v", got, tc.permanent)
			}
			after, ok := RetryAfter(tc.err)
			if ok != tc.throttled || after != tc.after {
				t.Errorf("RetryAfter = %v, %v; want %v, %v", after, ok, tc.after, tc.throttled)
			}
			if tc.err != nil {
				if tc.err.Error() != tc.msg {
					t.Errorf("Error() = %q, want %q", tc.err.Error(), tc.msg)
				}
				if !errors.Is(tc.err, errBase) && tc.name != "joined" {
					t.Errorf("errors.Is(base) = false: the class hides the cause")
				}
			}
		})
	}
	if Permanent(nil) != nil {
		t.Error("Permanent(nil) != nil")
	}
	if Throttle(nil, time.Second) != nil {
		t.Error("Throttle(nil) != nil")
	}
}
