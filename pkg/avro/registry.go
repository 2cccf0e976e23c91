package avro

import (
	"fmt"
	"net/http"
	"time"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/sluicehq/sluice/pkg/config"
)

// RegistryConfig points at a Confluent-compatible schema registry.
type RegistryConfig struct {
	URLs     []string      `yaml:"urls" env:"URLS" envSeparator:","`
	Username string        `yaml:"username" env:"USERNAME"`
	Password config.Secret `yaml:"password" env:"PASSWORD"`
	// AutoRegister registers Sluice's schemas at start (idempotent). Turn it
	// off where schemas are registered by a deployment pipeline instead.
	AutoRegister bool `yaml:"auto_register" env:"AUTO_REGISTER"`
}

// RegistryDefaults points at a local registry and registers schemas.
func RegistryDefaults() RegistryConfig {
	return RegistryConfig{URLs: []string{"http://127.0.0.1:8081"}, AutoRegister: true}
}

// Validate reports every problem.
func (c RegistryConfig) Validate() error {
	var p config.Problems
	if len(c.URLs) == 0 {
		p.Addf("urls: at least one registry URL is required")
	}
	if (c.Username == "") != (c.Password == "") {
		p.Addf("username and password go together")
	}
	return p.Err()
}

// NewClient builds a registry client.
func (c RegistryConfig) NewClient() (*sr.Client, error) {
	opts := []sr.ClientOpt{
		sr.URLs(c.URLs...),
		sr.HTTPClient(&http.Client{Timeout: 10 * time.Second}),
		sr.UserAgent("sluice"),
	}
	if c.Username != "" {
		opts = append(opts, sr.BasicAuth(c.Username, c.Password.Value()))
	}
	cl, err := sr.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("creating registry client: %w", err)
	}
	return cl, nil
}
