// Package logging builds the zap logger a service passes down to every
// component. There is no global logger.
package logging

import (
	"errors"
	"fmt"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Config selects level and encoding.
type Config struct {
	Level  string `yaml:"level" env:"LEVEL"`   // debug, info, warn, error
	Format string `yaml:"format" env:"FORMAT"` // json or console
}

// Defaults returns info-level JSON logging.
func Defaults() Config { return Config{Level: "info", Format: "json"} }

// Validate checks level and format and reports both problems.
func (c Config) Validate() error {
	var errs []error
	if _, err := zapcore.ParseLevel(c.Level); err != nil {
		errs = append(errs, fmt.Errorf("level: %w", err))
	}
	if c.Format != "json" && c.Format != "console" {
		errs = append(errs, fmt.Errorf("format: %q is neither json nor console", c.Format))
	}
	return errors.Join(errs...)
}

// New builds a logger for the named service.
func New(c Config, service string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(c.Level)
	if err != nil {
		return nil, err
	}
	zc := zap.NewProductionConfig()
	if c.Format == "console" {
		zc = zap.NewDevelopmentConfig()
		zc.EncoderConfig.EncodeLevel = zapcore.CapitalColorLevelEncoder
	}
	zc.Level = zap.NewAtomicLevelAt(lvl)
	zc.EncoderConfig.TimeKey = "ts"
	zc.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	zc.DisableStacktrace = true
	log, err := zc.Build()
	if err != nil {
		return nil, err
	}
	return log.With(zap.String("service", service)), nil
}
