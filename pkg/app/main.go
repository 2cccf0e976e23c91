package app

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/logging"
	"github.com/sluicehq/sluice/pkg/telemetry"
)

// Common is the configuration every service binary has.
type Common struct {
	Log             logging.Config `yaml:"log" envPrefix:"LOG_"`
	AdminAddr       string         `yaml:"admin_addr" env:"ADMIN_ADDR"`
	ShutdownTimeout time.Duration  `yaml:"shutdown_timeout" env:"SHUTDOWN_TIMEOUT"`
}

// CommonDefaults returns JSON info logs, admin on :9090 and a 30 s drain.
func CommonDefaults() Common {
	return Common{Log: logging.Defaults(), AdminAddr: ":9090", ShutdownTimeout: 30 * time.Second}
}

// Validate reports every problem.
func (c Common) Validate() error {
	var p config.Problems
	p.Add("log", c.Log.Validate())
	if c.AdminAddr == "" {
		p.Addf("admin_addr: required")
	}
	if c.ShutdownTimeout <= 0 {
		p.Addf("shutdown_timeout: must be positive")
	}
	return p.Err()
}

// Config is a binary's configuration: its own settings plus Common.
type Config interface {
	config.Validator
	CommonConfig() Common
}

// Env is what Main gives a service's build function.
type Env struct {
	Log     *zap.Logger
	Metrics *prometheus.Registry
	Ready   *telemetry.Readiness
}

// Main is the whole of a service binary's main: it parses -config, loads and
// validates cfg (which holds its defaults), builds logging, metrics and the
// admin server, calls build for the service's components and runs them. It
// returns the process exit code.
func Main(service string, cfg Config, build func(ctx context.Context, env Env) ([]Component, error)) int {
	fs := flag.NewFlagSet(service, flag.ContinueOnError)
	path := fs.String("config", os.Getenv("SLUICE_CONFIG"), "YAML config file (env SLUICE_CONFIG); SLUICE_* variables override it")
	verify := fs.Bool("config.verify", false, "validate the configuration and exit")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	if err := config.Load(*path, cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if *verify {
		fmt.Println("configuration ok")
		return 0
	}
	common := cfg.CommonConfig()
	log, err := logging.New(common.Log, service)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer func() { _ = log.Sync() }()
	if os.Getenv("GOGC") == "" {
		// Ingest allocates many short-lived maps per event; collecting less
		// often trades a little memory (bounded by GOMEMLIMIT when set) for
		// a lot of CPU.
		debug.SetGCPercent(300)
	}
	env := Env{Log: log, Metrics: telemetry.NewRegistry(), Ready: &telemetry.Readiness{}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	comps, err := build(ctx, env)
	cancel()
	if err != nil {
		log.Error("building service", zap.Error(err))
		return 1
	}
	admin := telemetry.NewAdmin(common.AdminAddr, env.Metrics, env.Ready, log)
	comps = append([]Component{admin}, comps...)
	if err := Run(context.Background(), log, common.ShutdownTimeout, comps...); err != nil {
		log.Error("service stopped with error", zap.Error(err))
		return 1
	}
	return 0
}
