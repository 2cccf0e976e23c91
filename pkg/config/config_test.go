package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"gopkg.in/yaml.v3"
)

type testInner struct {
	Password Secret        `yaml:"password" env:"PASSWORD"`
	Timeout  time.Duration `yaml:"timeout" env:"TIMEOUT"`
}

type testConfig struct {
	Name    string    `yaml:"name" env:"NAME"`
	Port    int       `yaml:"port" env:"PORT"`
	Brokers []string  `yaml:"brokers" env:"BROKERS" envSeparator:","`
	Inner   testInner `yaml:"inner" envPrefix:"INNER_"`
}

func testDefaults() *testConfig {
	return &testConfig{Name: "default", Port: 80, Brokers: []string{"a:1"}, Inner: testInner{Timeout: time.Second}}
}

func (c *testConfig) Validate() error {
	var p Problems
	if c.Name == "" {
		p.Addf("name: required")
	}
	if c.Port <= 0 || c.Port > 65535 {
		p.Addf("port: %d is out of range", c.Port)
	}
	if c.Inner.Timeout <= 0 {
		p.Addf("inner.timeout: must be positive")
	}
	return p.Err()
}

func writeFile(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadLayers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		yaml    string // "" means no file
		environ []string
		want    testConfig
	}{
		{
			name: "defaults only",
			want: *testDefaults(),
		},
		{
			name: "empty file",
			yaml: "\n",
			want: *testDefaults(),
		},
		{
			name: "comments only",
			yaml: "# nothing set here\n",
			want: *testDefaults(),
		},
		{
			name: "yaml overrides defaults",
			yaml: "name: from-yaml\nbrokers: [b:2, c:3]\ninner:\n  timeout: 5s\n  password: hunter2\n",
			want: testConfig{Name: "from-yaml", Port: 80, Brokers: []string{"b:2", "c:3"}, Inner: testInner{Password: "hunter2", Timeout: 5 * time.Second}},
		},
		{
			name:    "env overrides yaml",
			yaml:    "name: from-yaml\nport: 81\n",
			environ: []string{"SLUICE_NAME=from-env", "SLUICE_INNER_TIMEOUT=250ms", "SLUICE_BROKERS=x:1,y:2", "SLUICE_INNER_PASSWORD=s3cret", "NAME=ignored", "SLUICE_UNRELATED=1"},
			want:    testConfig{Name: "from-env", Port: 81, Brokers: []string{"x:1", "y:2"}, Inner: testInner{Password: "s3cret", Timeout: 250 * time.Millisecond}},
		},
		{
			name:    "env without file",
			environ: []string{"SLUICE_PORT=8080", "SLUICE_INNER_PASSWORD=a=b"},
			want:    testConfig{Name: "default", Port: 8080, Brokers: []string{"a:1"}, Inner: testInner{Password: "a=b", Timeout: time.Second}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := ""
			if tc.yaml != "" {
				path = writeFile(t, tc.yaml)
			}
			cfg := testDefaults()
			if err := load(path, cfg, tc.environ); err != nil {
				t.Fatalf("load: %v", err)
			}
			if fmt.Sprintf("%#v", *cfg) != fmt.Sprintf("%#v", tc.want) || cfg.Inner.Password != tc.want.Inner.Password {
				t.Fatalf("got  %#v\nwant %#v", *cfg, tc.want)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		yaml    string
		environ []string
		want    []string // substrings of the error, each on its own line
	}{
		{
			name: "unknown yaml key",
			yaml: "name: x\nprot: 81\n",
			want: []string{"field prot not found"},
		},
		{
			name: "unknown nested yaml key",
			yaml: "inner:\n  timeuot: 1s\n",
			want: []string{"field timeuot not found"},
		},
		{
			name: "bad yaml value",
			yaml: "port: eighty\n",
			want: []string{"config file", "eighty"},
		},
		{
			name:    "bad env value",
			environ: []string{"SLUICE_PORT=eighty"},
			want:    []string{"environment:", `"Port"`, "eighty"},
		},
		{
			name:    "yaml and env problems both listed",
			yaml:    "prot: 1\n",
			environ: []string{"SLUICE_INNER_TIMEOUT=soon"},
			want:    []string{"field prot not found", "environment:"},
		},
		{
			name: "every validation problem listed",
			yaml: "name: \"\"\nport: 0\ninner:\n  timeout: 0s\n",
			want: []string{"  - name: required", "  - port: 0 is out of range", "  - inner.timeout: must be positive"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := ""
			if tc.yaml != "" {
				path = writeFile(t, tc.yaml)
			}
			err := load(path, testDefaults(), tc.environ)
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("load = %v, want a *config.Error", err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "invalid configuration:\n  - ") {
				t.Errorf("error does not start with the heading and a list:\n%s", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q:\n%s", w, msg)
				}
			}
		})
	}

	t.Run("missing file", func(t *testing.T) {
		err := load(filepath.Join(t.TempDir(), "nope.yaml"), testDefaults(), nil)
		if !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("load = %v, want os.ErrNotExist", err)
		}
	})

	t.Run("validation problems unwrap", func(t *testing.T) {
		sentinel := errors.New("sentinel")
		err := load("", &validatorFunc{func() error { return fmt.Errorf("x: %w", sentinel) }}, nil)
		if !errors.Is(err, sentinel) {
			t.Fatalf("errors.Is(%v, sentinel) = false", err)
		}
	})
}

type validatorFunc struct{ fn func() error }

func (v *validatorFunc) Validate() error { return v.fn() }

func TestLoadReadsProcessEnvironment(t *testing.T) {
	t.Setenv("SLUICE_NAME", "from-process")
	cfg := testDefaults()
	if err := Load("", cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Name != "from-process" {
		t.Fatalf("Name = %q", cfg.Name)
	}
}

func TestSecretNeverPrints(t *testing.T) {
	const value = "hunter2"
	s := Secret(value)
	holder := struct {
		User     string `json:"user" yaml:"user"`
		Password Secret `json:"password" yaml:"password"`
	}{"u", s}

	render := map[string]func() (string, error){
		"%v":             func() (string, error) { return fmt.Sprintf("%v", s), nil },
		"%s":             func() (string, error) { return fmt.Sprintf("%s", s), nil },
		"%q":             func() (string, error) { return fmt.Sprintf("%q", s), nil },
		"%#v":            func() (string, error) { return fmt.Sprintf("%#v", s), nil },
		"%+v struct":     func() (string, error) { return fmt.Sprintf("%+v", holder), nil },
		"%#v struct":     func() (string, error) { return fmt.Sprintf("%#v", holder), nil },
		"%v pointer":     func() (string, error) { return fmt.Sprintf("%v", &holder), nil },
		"json":           func() (string, error) { b, err := json.Marshal(s); return string(b), err },
		"json struct":    func() (string, error) { b, err := json.Marshal(holder); return string(b), err },
		"yaml":           func() (string, error) { b, err := yaml.Marshal(s); return string(b), err },
		"yaml struct":    func() (string, error) { b, err := yaml.Marshal(holder); return string(b), err },
		"zap.Any":        func() (string, error) { return zapLine(zap.Any("password", s)), nil },
		"zap.Stringer":   func() (string, error) { return zapLine(zap.Stringer("password", s)), nil },
		"zap.Any struct": func() (string, error) { return zapLine(zap.Any("cfg", holder)), nil },
		"zap.Reflect":    func() (string, error) { return zapLine(zap.Reflect("cfg", holder)), nil },
		"error":          func() (string, error) { return fmt.Errorf("bad password %v", s).Error(), nil },
	}
	for name, fn := range render {
		t.Run(name, func(t *testing.T) {
			out, err := fn()
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(out, value) {
				t.Fatalf("secret printed: %s", out)
			}
			if !strings.Contains(out, "[redacted]") {
				t.Fatalf("no [redacted] marker: %s", out)
			}
		})
	}

	t.Run("value", func(t *testing.T) {
		if s.Value() != value {
			t.Fatalf("Value() = %q", s.Value())
		}
	})
	t.Run("unset prints empty", func(t *testing.T) {
		var empty Secret
		if got := fmt.Sprint(empty); got != "" {
			t.Errorf("fmt = %q", got)
		}
		if b, _ := json.Marshal(empty); string(b) != `""` {
			t.Errorf("json = %s", b)
		}
	})
	t.Run("yaml round trip of a dump does not restore the secret", func(t *testing.T) {
		b, err := yaml.Marshal(holder)
		if err != nil {
			t.Fatal(err)
		}
		var back struct {
			User     string `yaml:"user"`
			Password Secret `yaml:"password"`
		}
		if err := yaml.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if back.Password.Value() == value {
			t.Fatal("dump carried the secret")
		}
	})
}

func zapLine(f zap.Field) string {
	var buf bytes.Buffer
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	log := zap.New(zapcore.NewCore(enc, zapcore.AddSync(&buf), zap.DebugLevel))
	log.Info("msg", f)
	return buf.String()
}

func TestProblems(t *testing.T) {
	leaf := errors.New("leaf")
	for _, tc := range []struct {
		name  string
		build func(p *Problems)
		want  []string
	}{
		{"none", func(*Problems) {}, nil},
		{"nil is ignored", func(p *Problems) { p.Add("kafka", nil) }, nil},
		{"addf", func(p *Problems) { p.Addf("port: %d too big", 70000) }, []string{"port: 70000 too big"}},
		{"single error prefixed", func(p *Problems) { p.Add("log", errors.New("level: bad")) }, []string{"log.level: bad"}},
		{"joined errors each prefixed", func(p *Problems) {
			p.Add("kafka", errors.Join(errors.New("brokers: required"), errors.New("linger: too long")))
		}, []string{"kafka.brokers: required", "kafka.linger: too long"}},
		{"nested problems prefixed twice", func(p *Problems) {
			var inner Problems
			inner.Add("sasl", errors.Join(errors.New("mechanism: bad"), errors.New("username: required")))
			inner.Addf("brokers: required")
			p.Add("kafka", inner.Err())
		}, []string{"kafka.sasl.mechanism: bad", "kafka.sasl.username: required", "kafka.brokers: required"}},
		{"config error prefixed", func(p *Problems) {
			p.Add("sub", &Error{Errs: []error{errors.New("a: x"), errors.New("b: y")}})
		}, []string{"sub.a: x", "sub.b: y"}},
		{"config error holding a join prefixed", func(p *Problems) {
			p.Add("sub", &Error{Errs: []error{errors.Join(errors.New("a: x"), errors.New("b: y"))}})
		}, []string{"sub.a: x", "sub.b: y"}},
		{"wrapped sentinel kept", func(p *Problems) { p.Add("x", fmt.Errorf("y: %w", leaf)) }, []string{"x.y: leaf"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p Problems
			tc.build(&p)
			err := p.Err()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Err() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Err() = nil")
			}
			if got := strings.Split(err.Error(), "\n"); strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Fatalf("problems:\n%s\nwant:\n%s", err, strings.Join(tc.want, "\n"))
			}
		})
	}

	t.Run("errors.Is through prefix", func(t *testing.T) {
		var p Problems
		p.Add("x", fmt.Errorf("y: %w", leaf))
		if !errors.Is(p.Err(), leaf) {
			t.Fatal("prefix lost the wrapped error")
		}
	})
}

func TestErrorFormat(t *testing.T) {
	err := &Error{Errs: []error{errors.New("file: bad"), errors.Join(errors.New("a"), errors.New("b"))}}
	want := "invalid configuration:\n  - file: bad\n  - a\n  - b"
	if err.Error() != want {
		t.Fatalf("Error() = %q, want %q", err.Error(), want)
	}
}
