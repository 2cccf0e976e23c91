package logging

import (
	"strings"
	"testing"

	"go.uber.org/zap/zapcore"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string // problem prefixes, in order
	}{
		{"defaults", Defaults(), nil},
		{"console debug", Config{Level: "debug", Format: "console"}, nil},
		{"bad level", Config{Level: "loud", Format: "json"}, []string{"level:"}},
		{"bad format", Config{Level: "info", Format: "xml"}, []string{"format:"}},
		{"both bad", Config{Level: "loud", Format: "xml"}, []string{"level:", "format:"}},
		{"empty", Config{}, []string{"format:"}}, // "" parses as info
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Validate = %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate = nil")
			}
			got := strings.Split(err.Error(), "\n")
			if len(got) != len(tc.want) {
				t.Fatalf("problems %q, want %q", got, tc.want)
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("problem %q, want prefix %q", got[i], w)
				}
			}
		})
	}
}

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		cfg     Config
		enabled zapcore.Level
		off     zapcore.Level
	}{
		{Defaults(), zapcore.InfoLevel, zapcore.DebugLevel},
		{Config{Level: "warn", Format: "console"}, zapcore.WarnLevel, zapcore.InfoLevel},
		{Config{Level: "debug", Format: "json"}, zapcore.DebugLevel, zapcore.DebugLevel - 1},
	} {
		t.Run(tc.cfg.Level+"/"+tc.cfg.Format, func(t *testing.T) {
			log, err := New(tc.cfg, "svc")
			if err != nil {
				t.Fatal(err)
			}
			if !log.Core().Enabled(tc.enabled) || log.Core().Enabled(tc.off) {
				t.Fatalf("level %s: %s enabled %v, %s enabled %v", tc.cfg.Level,
					tc.enabled, log.Core().Enabled(tc.enabled), tc.off, log.Core().Enabled(tc.off))
			}
		})
	}
	if _, err := New(Config{Level: "loud", Format: "json"}, "svc"); err == nil {
		t.Fatal("New with a bad level succeeded")
	}
}
