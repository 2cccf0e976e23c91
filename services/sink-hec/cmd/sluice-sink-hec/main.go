// Command sluice-sink-hec runs the Splunk HEC sink on its own.
package main

import (
	"context"
	"errors"
	"os"

	"github.com/sluicehq/sluice/pkg/app"
	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/config"
	sinkhec "github.com/sluicehq/sluice/services/sink-hec"
)

type binConfig struct {
	app.Common `yaml:",inline"`
	Registry   avro.RegistryConfig `yaml:"registry" envPrefix:"REGISTRY_"`
	Sink       sinkhec.Config      `yaml:",inline"`
}

func (c *binConfig) CommonConfig() app.Common { return c.Common }

func (c *binConfig) Validate() error {
	var p config.Problems
	p.Add("registry", c.Registry.Validate())
	return errors.Join(c.Common.Validate(), p.Err(), c.Sink.Validate())
}

func main() {
	cfg := binConfig{Common: app.CommonDefaults(), Registry: avro.RegistryDefaults(), Sink: sinkhec.Defaults()}
	os.Exit(app.Main("sink-hec", &cfg, func(ctx context.Context, env app.Env) ([]app.Component, error) {
		serde, err := avro.Connect(ctx, cfg.Registry)
		if err != nil {
			return nil, err
		}
		svc, err := sinkhec.New(cfg.Sink, sinkhec.Deps{Log: env.Log, Metrics: env.Metrics, Ready: env.Ready, Serde: serde})
		return []app.Component{svc}, err // Main ignores the components on error
	}))
}
