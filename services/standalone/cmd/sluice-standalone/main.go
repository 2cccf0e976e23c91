// Command sluice-standalone runs the whole pipeline in one process with an
// embedded Kafka and schema registry (`make run`).
package main

import (
	"context"
	"os"

	"github.com/sluicehq/sluice/pkg/app"
	"github.com/sluicehq/sluice/services/standalone"
)

func main() {
	cfg := standalone.Defaults()
	os.Exit(app.Main("standalone", &cfg, func(ctx context.Context, env app.Env) ([]app.Component, error) {
		return standalone.Build(ctx, &cfg, env)
	}))
}
