package kafka

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap/zaptest"

	"github.com/sluicehq/sluice/pkg/config"
)

func TestConfigValidate(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		if err := Defaults().Validate(); err != nil {
			t.Fatalf("Defaults().Validate() = %v", err)
		}
	})
	for _, tc := range []struct {
		name  string
		edit  func(c *Config)
		wants []string // each a problem prefix, in order
	}{
		{"everything wrong", func(c *Config) {
			*c = Config{
				Linger:            2 * time.Second,
				DeliveryTimeout:   time.Millisecond,
				MaxMessageBytes:   10,
				ReplicationFactor: 0,
				SASL:              SASLConfig{Mechanism: "GSSAPI"},
				TLS:               TLSConfig{CertFile: "c.pem"},
			}
		}, []string{
			"brokers:", "linger:", "max_buffered_bytes:", "max_buffered_records:", "delivery_timeout:",
			"max_message_bytes:", "partitions:", "replication_factor:", "session_timeout:", "heartbeat_interval:",
			"rebalance_timeout:", "sasl.mechanism:", "sasl: username and password", "tls: cert_file and key_file",
		}},
		{"negative linger", func(c *Config) { c.Linger = -1 }, []string{"linger:"}},
		{"unknown compression", func(c *Config) { c.Compression = "Snappy" }, []string{"compression:"}},
		{"max message bytes above 100 MiB", func(c *Config) { c.MaxMessageBytes = 100<<20 + 1 }, []string{"max_message_bytes:"}},
		{"long client id", func(c *Config) { c.ClientID = strings.Repeat("x", 257) }, []string{"client_id:"}},
		{"short rebalance timeout", func(c *Config) { c.RebalanceTimeout = 99 * time.Millisecond }, []string{"rebalance_timeout:"}},
		{"replication factor below -1", func(c *Config) { c.ReplicationFactor = -2 }, []string{"replication_factor:"}},
		{"heartbeat not below session", func(c *Config) { c.HeartbeatInterval = c.SessionTimeout }, []string{"heartbeat_interval:"}},
		{"sasl without password", func(c *Config) { c.SASL = SASLConfig{Mechanism: "PLAIN", Username: "u"} }, []string{"sasl: username and password"}},
		{"key without cert", func(c *Config) { c.TLS.KeyFile = "k.pem" }, []string{"tls: cert_file and key_file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Defaults()
			tc.edit(&c)
			err := c.Validate()
			if err == nil {
				t.Fatal("Validate = nil")
			}
			got := strings.Split(err.Error(), "\n")
			if len(got) != len(tc.wants) {
				t.Fatalf("%d problems, want %d:\n%s", len(got), len(tc.wants), err)
			}
			for i, w := range tc.wants {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("problem %d = %q, want prefix %q", i, got[i], w)
				}
			}
		})
	}
	for _, m := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run("sasl "+m, func(t *testing.T) {
			c := Defaults()
			c.SASL = SASLConfig{Mechanism: m, Username: "u", Password: "p"}
			if err := c.Validate(); err != nil {
				t.Fatalf("Validate = %v", err)
			}
		})
	}
}

// testPKI is a CA and a certificate it signed for 127.0.0.1, written as PEM
// files in a test's temporary directory.
type testPKI struct {
	caFile, certFile, keyFile string
	server                    tls.Certificate
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "sluice test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	p := testPKI{
		caFile:   write("ca.pem", "CERTIFICATE", caDER),
		certFile: write("cert.pem", "CERTIFICATE", der),
		keyFile:  write("key.pem", "EC PRIVATE KEY", keyDER),
	}
	if p.server, err = tls.LoadX509KeyPair(p.certFile, p.keyFile); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTLSBuild(t *testing.T) {
	pki := newTestPKI(t)
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing.pem")

	for _, tc := range []struct {
		name    string
		cfg     TLSConfig
		wantErr string
		check   func(t *testing.T, tc *tls.Config)
	}{
		{"system roots", TLSConfig{Enabled: true, ServerName: "kafka.example"}, "", func(t *testing.T, c *tls.Config) {
			if c.RootCAs != nil || c.ServerName != "kafka.example" || c.MinVersion != tls.VersionTLS12 || c.InsecureSkipVerify {
				t.Fatalf("config %+v", c)
			}
		}},
		{"ca file", TLSConfig{Enabled: true, CAFile: pki.caFile}, "", func(t *testing.T, c *tls.Config) {
			if c.RootCAs == nil {
				t.Fatal("RootCAs not loaded")
			}
			leaf, err := x509.ParseCertificate(pki.server.Certificate[0])
			if err != nil {
				t.Fatal(err)
			}
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: c.RootCAs}); err != nil {
				t.Fatalf("the loaded pool does not verify a certificate the CA signed: %v", err)
			}
		}},
		{"client certificate", TLSConfig{Enabled: true, CertFile: pki.certFile, KeyFile: pki.keyFile}, "", func(t *testing.T, c *tls.Config) {
			if len(c.Certificates) != 1 {
				t.Fatalf("%d client certificates", len(c.Certificates))
			}
		}},
		{"insecure", TLSConfig{Enabled: true, InsecureSkipVerify: true}, "", func(t *testing.T, c *tls.Config) {
			if !c.InsecureSkipVerify {
				t.Fatal("InsecureSkipVerify not set")
			}
		}},
		{"missing ca file", TLSConfig{Enabled: true, CAFile: missing}, "reading tls ca_file", nil},
		{"ca file without PEM", TLSConfig{Enabled: true, CAFile: notPEM}, "holds no PEM certificate", nil},
		{"missing key", TLSConfig{Enabled: true, CertFile: pki.certFile, KeyFile: missing}, "loading tls client certificate", nil},
		{"key that is not a key", TLSConfig{Enabled: true, CertFile: pki.certFile, KeyFile: pki.caFile}, "loading tls client certificate", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.cfg.build()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("build = %v, want %q", err, tc.wantErr)
				}
				// clientOpts reports the same error, so no client is built.
				cfg := Defaults()
				cfg.TLS = tc.cfg
				if _, err := cfg.clientOpts(); err == nil {
					t.Fatal("clientOpts succeeded")
				}
				if _, err := NewProducer(cfg, zaptest.NewLogger(t)); err == nil {
					t.Fatal("NewProducer succeeded")
				}
				return
			}
			if err != nil {
				t.Fatalf("build: %v", err)
			}
			tc.check(t, c)
		})
	}
}

// TestTLSConnect connects to a kfake broker that serves TLS with a
// certificate from the test CA.
func TestTLSConnect(t *testing.T) {
	pki := newTestPKI(t)
	cluster := fakeCluster(t, kfake.TLS(&tls.Config{Certificates: []tls.Certificate{pki.server}, MinVersion: tls.VersionTLS12}))
	for _, tc := range []struct {
		name string
		tls  TLSConfig
		ok   bool
	}{
		{"trusted ca", TLSConfig{Enabled: true, CAFile: pki.caFile}, true},
		{"unknown ca", TLSConfig{Enabled: true}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Defaults()
			cfg.Brokers = cluster.ListenAddrs()
			cfg.TLS = tc.tls
			ping(t, cfg, tc.ok)
		})
	}
}

func ping(t *testing.T, cfg Config, wantOK bool) {
	t.Helper()
	p, err := NewProducer(cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Close(context.Background()) }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = p.Ping(ctx)
	if wantOK && err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if !wantOK && err == nil {
		t.Fatal("Ping succeeded")
	}
}

func TestSASLConnect(t *testing.T) {
	for _, m := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(m, func(t *testing.T) {
			cluster := fakeCluster(t, kfake.EnableSASL(), kfake.Superuser(m, "sluice", "s3cret"))
			for _, tc := range []struct {
				name, user, pass string
				ok               bool
			}{
				{"right password", "sluice", "s3cret", true},
				{"wrong password", "sluice", "nope", false},
			} {
				t.Run(tc.name, func(t *testing.T) {
					cfg := Defaults()
					cfg.Brokers = cluster.ListenAddrs()
					cfg.SASL = SASLConfig{Mechanism: m, Username: tc.user, Password: config.Secret(tc.pass)}
					ping(t, cfg, tc.ok)
				})
			}
		})
	}
}

// fakeCluster starts a kfake broker for tests inside this package, which
// cannot import kafkatest.
func fakeCluster(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// TestValidateAgreesWithFranzGo checks that a Config that passes Validate
// also builds a producer and a consumer: -config.verify must not pass a
// configuration that franz-go then refuses at start.
func TestValidateAgreesWithFranzGo(t *testing.T) {
	cluster := fakeCluster(t)
	for _, tc := range []struct {
		name string
		edit func(c *Config)
	}{
		{"defaults", func(*Config) {}},
		{"zero rebalance timeout", func(c *Config) { c.RebalanceTimeout = 0 }},
		{"tiny session timeout", func(c *Config) { c.SessionTimeout, c.HeartbeatInterval = 50*time.Millisecond, 10*time.Millisecond }},
		{"huge max message bytes", func(c *Config) { c.MaxMessageBytes = 200 << 20 }},
		{"long client id", func(c *Config) { c.ClientID = strings.Repeat("x", 300) }},
		{"long linger", func(c *Config) { c.Linger = 2 * time.Minute }},
		{"zstd", func(c *Config) { c.Compression = "zstd" }},
		{"no codec named", func(c *Config) { c.Compression = "" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Defaults()
			cfg.Brokers = cluster.ListenAddrs()
			tc.edit(&cfg)
			if err := cfg.Validate(); err != nil {
				return // refused up front: fine
			}
			log := zaptest.NewLogger(t)
			p, err := NewProducer(cfg, log)
			if err != nil {
				t.Fatalf("Validate passed but NewProducer failed: %v", err)
			}
			_ = p.Close(context.Background())
			c, err := NewConsumer(cfg, GroupConfig{Group: "g", Topics: []string{"t"}}, HandlerFunc(func(context.Context, []*kgo.Record) error { return nil }), log)
			if err != nil {
				t.Fatalf("Validate passed but NewConsumer failed: %v", err)
			}
			_ = c.Stop(context.Background())
		})
	}
}
