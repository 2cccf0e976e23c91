package kafkatest

import (
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

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/kafka"
)

// The variables .ci/kafka.sh env prints for a broker started with
// --sasl-tls: a SASL_SSL listener, its SCRAM user and the CA that signed
// its certificate.
const (
	EnvSASLTLSBrokers   = "KAFKA_SASL_TLS_BROKERS"
	EnvSASLTLSMechanism = "KAFKA_SASL_TLS_MECHANISM"
	EnvSASLTLSUsername  = "KAFKA_SASL_TLS_USERNAME"
	EnvSASLTLSPassword  = "KAFKA_SASL_TLS_PASSWORD"
	EnvSASLTLSCAFile    = "KAFKA_SASL_TLS_CA_FILE"
)

// RealSASLTLS reports whether SASLTLS names a real broker.
func RealSASLTLS() bool { return os.Getenv(EnvSASLTLSBrokers) != "" }

// SASLTLS returns a Config for a broker that takes only SASL over TLS: the
// real broker's SASL_SSL listener when KAFKA_SASL_TLS_BROKERS is set, else an
// in-process kfake cluster serving TLS with a certificate from a CA made for
// the test and one SCRAM-SHA-512 user. The Config's TLS section trusts that
// CA by file, as a deployment would.
func SASLTLS(t testing.TB) kafka.Config {
	t.Helper()
	cfg := base()
	if b := os.Getenv(EnvSASLTLSBrokers); b != "" {
		cfg.Brokers = strings.Split(b, ",")
		cfg.SASL = kafka.SASLConfig{
			Mechanism: envOr(EnvSASLTLSMechanism, "SCRAM-SHA-512"),
			Username:  os.Getenv(EnvSASLTLSUsername),
			Password:  config.Secret(os.Getenv(EnvSASLTLSPassword)),
		}
		cfg.TLS = kafka.TLSConfig{Enabled: true, CAFile: os.Getenv(EnvSASLTLSCAFile)}
		return cfg
	}
	caFile, cert := testPKI(t)
	const user, pass = "sluice", "sluice-scram-secret"
	c := Fake(t, kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", user, pass),
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))
	cfg.Brokers = c.ListenAddrs()
	cfg.SASL = kafka.SASLConfig{Mechanism: "SCRAM-SHA-512", Username: user, Password: config.Secret(pass)}
	cfg.TLS = kafka.TLSConfig{Enabled: true, CAFile: caFile}
	return cfg
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// testPKI makes a CA (written as PEM to a file) and a server certificate
// for 127.0.0.1 and localhost signed by it.
func testPKI(t testing.TB) (caFile string, server tls.Certificate) {
	t.Helper()
	must := func(err error) {
		if err != nil {
			t.Fatalf("making the test PKI: %v", err)
		}
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kafkatest CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	must(err)
	ca, err := x509.ParseCertificate(caDER)
	must(err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	must(err)
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	must(os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600))
	return caFile, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: nil}
}
