// Package config loads a service's typed configuration: defaults set in code,
// then a YAML file, then SLUICE_* environment overrides, then validation that
// reports every problem at once.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/caarlos0/env/v11"
	"gopkg.in/yaml.v3"
)

// EnvPrefix prefixes every environment override.
const EnvPrefix = "SLUICE_"

// Validator is a configuration that can check itself. Validate returns every
// problem it finds, joined (errors.Join), not just the first.
type Validator interface {
	Validate() error
}

// Load fills cfg, which the caller has set to its defaults: the YAML file at
// path (skipped when path is ""), then environment overrides named by the
// `env` struct tags under the SLUICE_ prefix, then cfg.Validate. Unknown YAML
// keys are errors, so a misspelt key never silently falls back to a default.
func Load(path string, cfg Validator) error {
	return load(path, cfg, os.Environ())
}

func load(path string, cfg Validator, environ []string) error {
	var errs []error
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("reading config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) { // an empty file is fine
			errs = append(errs, fmt.Errorf("config file %s: %w", path, err))
		}
	}
	envs := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			envs[k] = v
		}
	}
	if err := env.ParseWithOptions(cfg, env.Options{Prefix: EnvPrefix, Environment: envs}); err != nil {
		errs = append(errs, fmt.Errorf("environment: %w", err))
	}
	if len(errs) == 0 {
		if err := cfg.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return &Error{Errs: errs}
	}
	return nil
}

// Error lists every configuration problem found.
type Error struct{ Errs []error }

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("invalid configuration:")
	for _, err := range e.Errs {
		for _, line := range strings.Split(err.Error(), "\n") {
			b.WriteString("\n  - ")
			b.WriteString(line)
		}
	}
	return b.String()
}

func (e *Error) Unwrap() []error { return e.Errs }

// Secret is a string that never prints: fmt, zap and YAML output show
// "[redacted]" (or "" when unset).
type Secret string

func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// GoString keeps %#v from printing the secret.
func (s Secret) GoString() string { return s.String() }

// MarshalYAML keeps the secret out of dumped configuration.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// MarshalText keeps the secret out of JSON and zap output.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Value returns the secret itself, for the one place that needs it.
func (s Secret) Value() string { return string(s) }

// Problems collects validation errors with a field prefix.
type Problems struct{ errs []error }

// Addf records a problem.
func (p *Problems) Addf(format string, a ...any) { p.errs = append(p.errs, fmt.Errorf(format, a...)) }

// Add records err, if not nil, under prefix: each error of a join (or of
// an *Error), at any depth, becomes its own problem named prefix.<problem>.
func (p *Problems) Add(prefix string, err error) {
	if err == nil {
		return
	}
	var ce *Error
	if errors.As(err, &ce) {
		for _, e := range ce.Errs {
			p.Add(prefix, e) // an element may itself be a join
		}
		return
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			p.Add(prefix, e)
		}
		return
	}
	p.errs = append(p.errs, fmt.Errorf("%s.%w", prefix, err))
}

// Err returns the problems joined, or nil.
func (p *Problems) Err() error { return errors.Join(p.errs...) }
