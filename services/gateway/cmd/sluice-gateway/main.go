// Command sluice-gateway runs the ingest gateway.
package main

import (
	"context"
	"errors"
	"os"

	"github.com/sluicehq/sluice/pkg/app"
	"github.com/sluicehq/sluice/pkg/avro"
	sconfig "github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/services/gateway"
)

type config struct {
	app.Common `yaml:",inline"`
	Registry   avro.RegistryConfig `yaml:"registry" envPrefix:"REGISTRY_"`
	Gateway    gateway.Config      `yaml:",inline"`
}

func (c *config) CommonConfig() app.Common { return c.Common }

func (c *config) Validate() error {
	var p sconfig.Problems
	p.Add("registry", c.Registry.Validate())
	return errors.Join(c.Common.Validate(), p.Err(), c.Gateway.Validate())
}

func main() {
	cfg := &config{Common: app.CommonDefaults(), Registry: avro.RegistryDefaults(), Gateway: gateway.Defaults()}
	os.Exit(app.Main("gateway", cfg, func(ctx context.Context, env app.Env) ([]app.Component, error) {
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
	}))
}
