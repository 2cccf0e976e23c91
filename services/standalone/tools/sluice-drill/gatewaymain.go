package main

import (
	"context"
	"errors"

	"github.com/sluicehq/sluice/pkg/app"
	"github.com/sluicehq/sluice/pkg/avro"
	sconfig "github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/services/gateway"
)

// gatewayMain is services/gateway/cmd/sluice-gateway's main, line for line:
// the drill tests run it in a child process of the test binary
// (SLUICE_DRILL_ROLE=gateway), so that `go test` needs no built binary; the
// drill tool runs bin/sluice-gateway itself.
func gatewayMain() int {
	cfg := &gatewayConfig{Common: app.CommonDefaults(), Registry: avro.RegistryDefaults(), Gateway: gateway.Defaults()}
	return app.Main("gateway", cfg, func(ctx context.Context, env app.Env) ([]app.Component, error) {
		gateway.ApplyMemoryLimit(cfg.Gateway, env.Log)
		serde, err := avro.Connect(ctx, cfg.Registry)
		if err != nil {
			return nil, err
		}
		gw, err := gateway.New(cfg.Gateway, gateway.Deps{Log: env.Log, Metrics: env.Metrics, Ready: env.Ready, Serde: serde})
		if err != nil {
			return nil, err
		}
		return []app.Component{gw}, nil
	})
}

type gatewayConfig struct {
	app.Common `yaml:",inline"`
	Registry   avro.RegistryConfig `yaml:"registry" envPrefix:"REGISTRY_"`
	Gateway    gateway.Config      `yaml:",inline"`
}

func (c *gatewayConfig) CommonConfig() app.Common { return c.Common }

func (c *gatewayConfig) Validate() error {
	var p sconfig.Problems
	p.Add("registry", c.Registry.Validate())
	return errors.Join(c.Common.Validate(), p.Err(), c.Gateway.Validate())
}
