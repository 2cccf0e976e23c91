// Package standalone runs the whole Sluice pipeline in one process: an
// embedded Kafka (kfake, persisted under the data directory), an embedded
// Confluent-compatible schema registry, the gateway, the enricher and the
// file sink. It is what `make run` starts.
package standalone

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/zap"

	"github.com/sluicehq/sluice/pkg/app"
	"github.com/sluicehq/sluice/pkg/avro"
	sconfig "github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/services/enricher"
	"github.com/sluicehq/sluice/services/gateway"
	sinkfile "github.com/sluicehq/sluice/services/sink-file"
	sinkhec "github.com/sluicehq/sluice/services/sink-hec"
)

// Config is the standalone binary's configuration.
type Config struct {
	app.Common `yaml:",inline"`
	// DataDir holds the embedded Kafka's log, the registry's subjects and
	// the file sink's output.
	DataDir      string `yaml:"data_dir" env:"DATA_DIR"`
	KafkaAddr    string `yaml:"kafka_addr" env:"KAFKA_ADDR"`
	RegistryAddr string `yaml:"registry_addr" env:"REGISTRY_ADDR"`
	// KafkaSyncWrites fsyncs every produce in the embedded broker (survives
	// power loss; slower). Without it, acknowledged data survives a crash of
	// the process but not of the machine.
	KafkaSyncWrites bool `yaml:"kafka_sync_writes" env:"KAFKA_SYNC_WRITES"`
	// RunEnricher and RunSinkFile turn the consumers off, e.g. for the
	// gateway benchmark, which measures the gateway alone.
	RunEnricher bool            `yaml:"run_enricher" env:"RUN_ENRICHER"`
	RunSinkFile bool            `yaml:"run_sink_file" env:"RUN_SINK_FILE"`
	Gateway     gateway.Config  `yaml:"gateway" envPrefix:"GATEWAY_"`
	Enricher    enricher.Config `yaml:"enricher" envPrefix:"ENRICHER_"`
	SinkFile    sinkfile.Config `yaml:"sink_file" envPrefix:"SINK_FILE_"`
	// SinkHEC runs when its URL and token are set: SLUICE_HEC_URL,
	// SLUICE_HEC_TOKEN (and SLUICE_HEC_ACK=true for indexer acknowledgement).
	SinkHEC sinkhec.Config `yaml:"sink_hec" envPrefix:"HEC_"`
}

// HECEnabled reports whether the HEC sink runs: its URL and token are set.
func (c *Config) HECEnabled() bool { return len(c.SinkHEC.URLs) > 0 && c.SinkHEC.Token != "" }

// DevWeaklayerKeyFile, in the data directory, holds the development
// Weaklayer group install key (the JSON object a sensor sends as "key"),
// generated on the first start with the dev key on.
const DevWeaklayerKeyFile = "dev-weaklayer-install-key.json"

// Defaults returns a loopback-only development setup.
func Defaults() Config {
	c := Config{
		Common:       app.CommonDefaults(),
		DataDir:      "./data",
		KafkaAddr:    "127.0.0.1:9092",
		RegistryAddr: "127.0.0.1:8081",
		Gateway:      gateway.Defaults(),
		Enricher:     enricher.Defaults(),
		SinkFile:     sinkfile.Defaults(),
		SinkHEC:      sinkhec.Defaults(),
		RunEnricher:  true,
		RunSinkFile:  true,
	}
	c.Common.AdminAddr = "127.0.0.1:9090"
	c.Common.Log.Format = "console"
	c.Gateway.Listen = "127.0.0.1:8080"
	c.Gateway.DevKey = true
	c.Gateway.Demo = true
	c.SinkFile.RotateAge = 2 * time.Second // files show up while you watch
	return c
}

// CommonConfig implements app.Config.
func (c *Config) CommonConfig() app.Common { return c.Common }

// Validate reports every problem. Kafka broker addresses inside the service
// sections are ignored: every service uses the embedded broker.
func (c *Config) Validate() error {
	var p sconfig.Problems
	if c.DataDir == "" {
		p.Addf("data_dir: required")
	}
	for name, a := range map[string]string{"kafka_addr": c.KafkaAddr, "registry_addr": c.RegistryAddr} {
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			p.Addf("%s: %v", name, err)
			continue
		}
		if _, err := strconv.Atoi(port); err != nil {
			p.Addf("%s: port %q is not a number", name, port)
		}
		if name == "kafka_addr" && host != "127.0.0.1" && host != "localhost" {
			p.Addf("kafka_addr: the embedded broker listens on 127.0.0.1 only")
		}
	}
	c.wire()
	p.Add("gateway", c.Gateway.Validate())
	p.Add("enricher", c.Enricher.Validate())
	p.Add("sink_file", c.SinkFile.Validate())
	if c.HECEnabled() {
		p.Add("sink_hec", c.SinkHEC.Validate())
	}
	return errors.Join(c.Common.Validate(), p.Err())
}

// wire points every service at the embedded broker and the data directory.
func (c *Config) wire() {
	brokers := []string{c.KafkaAddr}
	c.Gateway.Kafka.Brokers = brokers
	c.Enricher.Kafka.Brokers = brokers
	c.SinkFile.Kafka.Brokers = brokers
	c.SinkHEC.Kafka.Brokers = brokers
	if c.SinkFile.Dir == "" || c.SinkFile.Dir == sinkfile.Defaults().Dir {
		c.SinkFile.Dir = filepath.Join(c.DataDir, "sink")
	}
	// The databases `make geoip` installs, unless others are configured.
	if g := &c.Enricher.GeoIP; len(g.City) == 0 && len(g.ASN) == 0 {
		g.City, g.ASN, _ = enricher.InstalledGeoIP(filepath.Join(c.DataDir, "geoip"))
	}
}

// Build starts nothing; it returns the components in start order.
func Build(ctx context.Context, cfg *Config, env app.Env) ([]app.Component, error) {
	cfg.wire()
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("creating data dir: %w", err)
	}
	if cfg.Gateway.DevKey {
		// A Weaklayer group for development: the install key a sensor is
		// configured with is kept in the data directory.
		if err := gateway.EnableDevWeaklayerKey(&cfg.Gateway, filepath.Join(cfg.DataDir, DevWeaklayerKeyFile)); err != nil {
			return nil, err
		}
	}
	broker := &embeddedKafka{opts: kafkaOpts(cfg, env.Log), log: env.Log}
	reg, err := newRegistry(cfg.RegistryAddr, cfg.DataDir, env.Log)
	if err != nil {
		return nil, err
	}
	// The services need a registered Serde at construction, so the broker
	// and registry start here, ahead of the rest; app.Run stops them last.
	if err := broker.Start(ctx); err != nil {
		return nil, err
	}
	if err := reg.Start(ctx); err != nil {
		broker.stop()
		return nil, err
	}
	// Point the services at the address the broker really listens on
	// (port 0 in tests picks a free one).
	cfg.KafkaAddr = broker.c.ListenAddrs()[0]
	cfg.wire()
	fail := func(err error) ([]app.Component, error) {
		_ = reg.Stop(context.Background())
		broker.stop()
		return nil, err
	}
	serde, err := avro.Connect(ctx, avro.RegistryConfig{URLs: []string{reg.URL()}, AutoRegister: true})
	if err != nil {
		return fail(err)
	}
	if err := reg.save(ctx); err != nil {
		return fail(fmt.Errorf("saving registry: %w", err))
	}
	topics := []string{event.DLQTopic}
	for _, f := range event.Families {
		topics = append(topics, event.RawTopic(f), event.EnrichedTopic(f))
	}
	if err := kafka.EnsureTopics(ctx, cfg.Gateway.Kafka, nil, topics...); err != nil {
		return fail(err)
	}
	gw, err := gateway.New(cfg.Gateway, gateway.Deps{Log: env.Log.Named("gateway"), Metrics: env.Metrics, Ready: env.Ready, Serde: serde})
	if err != nil {
		return fail(err)
	}
	comps := []app.Component{broker, reg}
	// Consumers start before the gateway takes traffic; stop order is the reverse.
	if cfg.RunSinkFile {
		sink, err := sinkfile.New(cfg.SinkFile, sinkfile.Deps{Log: env.Log.Named("sink-file"), Metrics: env.Metrics, Ready: env.Ready, Serde: serde})
		if err != nil {
			return fail(err)
		}
		comps = append(comps, sink)
	}
	if cfg.HECEnabled() {
		hec, err := sinkhec.New(cfg.SinkHEC, sinkhec.Deps{Log: env.Log.Named("sink-hec"), Metrics: env.Metrics, Ready: env.Ready, Serde: serde})
		if err != nil {
			return fail(err)
		}
		comps = append(comps, hec)
	}
	if cfg.RunEnricher {
		en, err := enricher.New(cfg.Enricher, enricher.Deps{Log: env.Log.Named("enricher"), Metrics: env.Metrics, Ready: env.Ready, Serde: serde})
		if err != nil {
			return fail(err)
		}
		comps = append(comps, en)
	}
	banner := app.Func{N: "banner", StartFn: func(context.Context) error {
		printBanner(cfg, gw.Addr(), reg.URL())
		return nil
	}}
	return append(comps, gw, banner), nil
}

// kafkaOpts configures the embedded broker on cfg.KafkaAddr and
// <data_dir>/kafka. Its listener refuses anything that is not a Kafka
// request (see maxRequestBytes).
func kafkaOpts(cfg *Config, log *zap.Logger) []kfake.Opt {
	_, portStr, _ := net.SplitHostPort(cfg.KafkaAddr)
	port, _ := strconv.Atoi(portStr)
	kopts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.ListenFn(guardedListen(log.Named("kafka"))),
		kfake.DataDir(filepath.Join(cfg.DataDir, "kafka")),
		kfake.DefaultNumPartitions(int(cfg.Gateway.Kafka.Partitions)),
		kfake.BrokerConfigs(map[string]string{"group.consumer.heartbeat.interval.ms": "500"}),
	}
	if cfg.KafkaSyncWrites {
		kopts = append(kopts, kfake.SyncWrites())
	}
	return kopts
}

// embeddedKafka is the kfake cluster as a component.
type embeddedKafka struct {
	opts []kfake.Opt
	log  *zap.Logger
	c    *kfake.Cluster
}

func (k *embeddedKafka) Name() string { return "kafka" }

func (k *embeddedKafka) Start(context.Context) error {
	if k.c != nil {
		return nil
	}
	c, err := kfake.NewCluster(k.opts...)
	if err != nil {
		return fmt.Errorf("starting embedded kafka: %w", err)
	}
	k.c = c
	return nil
}

func (k *embeddedKafka) stop() {
	if k.c != nil {
		k.c.Close()
		k.c = nil
	}
}

func (k *embeddedKafka) Stop(context.Context) error {
	k.stop()
	return nil
}

func printBanner(cfg *Config, gwAddr, regURL string) {
	fmt.Printf(`
Sluice standalone is running.

  Gateway          http://%[1]s   (dev key: Authorization: Bearer dev, loopback only)
  Demo page        http://%[1]s/demo/   (browser agent: /sdk/sluice.js)
  Send events      curl -H 'Authorization: Bearer dev' -H 'Content-Type: application/x-ndjson' \
                        --data-binary @events.ndjson http://%[1]s/v1/events/edx
  Native endpoints /event  /segmentio/event?key=dev  /v1/crowdframe  /install  /events
                   /v1/workstation/archives  /v1/clicks  /services/collector (HEC token: dev)
  Weaklayer key    %[6]s/%[7]s   (the sensor's install key)
  Admin            http://%[2]s/metrics  /healthz  /readyz
  Kafka            %[3]s   (kcat -b %[3]s -L)
  Schema registry  %[4]s/subjects
  Topics           sluice.raw.<family>  sluice.enriched.<family>  sluice.dlq
  File sink output %[5]s/<family>/<yyyy-mm-dd>/
  Data directory   %[6]s   (delete it to start from scratch)

Stop with Ctrl-C; acknowledged events survive a restart.
`, gwAddr, cfg.AdminAddr, cfg.KafkaAddr, regURL, cfg.SinkFile.Dir, cfg.DataDir, DevWeaklayerKeyFile)
}
