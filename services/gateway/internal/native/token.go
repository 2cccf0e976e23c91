package native

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	// golang-jwt/jwt/v5 signs and verifies the sensor tokens. It is the
	// maintained successor of dgrijalva/jwt-go, which the Weaklayer
	// reference gateway uses, so tokens stay interchangeable with it (HS256,
	// claims group and sensor plus exp/iat/nbf); it checks exp and nbf for
	// us, and WithValidMethods refuses any other algorithm ("none", RS256
	// with an HMAC key), the classic JWT pitfalls we would otherwise have to
	// code against by hand.
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/sluicehq/sluice/pkg/config"
)

// WeaklayerConfig configures POST /install and POST /events.
type WeaklayerConfig struct {
	// InstallKeys are the group install keys sensors may install with, as
	// salted hashes: never the secret itself.
	InstallKeys []WeaklayerInstallKey `yaml:"install_keys"`
	// SigningSecrets sign the sensor tokens (HS256): the first signs new
	// tokens, the others are previous secrets still accepted, so a secret
	// is rotated by putting a new one first and dropping the oldest once
	// the token TTL has passed. A secret written "base64:<text>" is the
	// decoded bytes (the Weaklayer gateway's secret format).
	SigningSecrets []config.Secret `yaml:"signing_secrets" env:"SIGNING_SECRETS" envSeparator:","`
	// TokenTTL is how long an issued token is valid; sensors renew it on
	// /install with the token they hold.
	TokenTTL time.Duration `yaml:"token_ttl" env:"TOKEN_TTL"`
}

// WeaklayerInstallKey is the verifier of one group install key: the sensor
// sends {group, secret, checksum}; the gateway keeps only
// secret_hash = PBKDF2-HMAC-SHA256(secret, salt, 10000 iterations, 32 bytes),
// which is what the Weaklayer gateway's verifiers hold ("hash"), so its
// verifiers can be copied here. Ten thousand iterations are Weaklayer's;
// they are plenty because the secret is 512 random bits, not a password.
type WeaklayerInstallKey struct {
	Group string `yaml:"group"`
	// Salt and SecretHash are standard base64.
	Salt       string `yaml:"salt"`
	SecretHash string `yaml:"secret_hash"`
	// Checksum, optional, is the Weaklayer verifier checksum
	// (SHA-256 of group, salt and hash), checked at startup to catch typos.
	Checksum string `yaml:"checksum"`
}

// WeaklayerDefaults returns the defaults: no install keys (every /install
// is refused until keys are configured) and one-day tokens.
func WeaklayerDefaults() WeaklayerConfig {
	return WeaklayerConfig{TokenTTL: 24 * time.Hour}
}

const (
	wlHashIterations = 10000
	wlSecretBytes    = 64
	wlMinSigningKey  = 32
)

// Validate reports every problem.
func (c WeaklayerConfig) Validate() error {
	var p config.Problems
	for i, k := range c.InstallKeys {
		if _, err := k.parse(); err != nil {
			p.Addf("install_keys[%d]: %v", i, err)
		}
	}
	if len(c.InstallKeys) > 0 && len(c.SigningSecrets) == 0 {
		p.Addf("signing_secrets: required when install_keys are configured (tokens must be signed)")
	}
	for i, s := range c.SigningSecrets {
		b, err := signingKey(s)
		if err != nil {
			p.Addf("signing_secrets[%d]: %v", i, err)
		} else if len(b) < wlMinSigningKey {
			p.Addf("signing_secrets[%d]: must be at least %d bytes", i, wlMinSigningKey)
		}
	}
	if c.TokenTTL < time.Minute || c.TokenTTL > 90*24*time.Hour {
		p.Addf("token_ttl: must be between 1m and 2160h")
	}
	return p.Err()
}

func signingKey(s config.Secret) ([]byte, error) {
	v := s.Value()
	if b64, ok := strings.CutPrefix(v, "base64:"); ok {
		b, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return nil, errors.New("base64: the text after the prefix is not standard base64")
		}
		return b, nil
	}
	return []byte(v), nil
}

// installVerifier is a parsed WeaklayerInstallKey.
type installVerifier struct {
	group uuid.UUID
	salt  []byte
	hash  []byte
}

func (k WeaklayerInstallKey) parse() (installVerifier, error) {
	var v installVerifier
	var err error
	if v.group, err = uuid.Parse(k.Group); err != nil {
		return v, fmt.Errorf("group: %q is not a UUID", k.Group)
	}
	if v.salt, err = base64.StdEncoding.DecodeString(k.Salt); err != nil || len(v.salt) < 4 {
		return v, errors.New("salt: must be standard base64 of at least 4 bytes")
	}
	if v.hash, err = base64.StdEncoding.DecodeString(k.SecretHash); err != nil || len(v.hash) != 32 {
		return v, errors.New("secret_hash: must be standard base64 of 32 bytes")
	}
	if k.Checksum != "" {
		sum, err := base64.StdEncoding.DecodeString(k.Checksum)
		want := verifierChecksum(v.group, v.salt, v.hash)
		if err != nil || subtle.ConstantTimeCompare(sum, want[:]) != 1 {
			return v, errors.New("checksum: does not match group, salt and secret_hash (a typo?)")
		}
	}
	return v, nil
}

func verifierChecksum(group uuid.UUID, salt, hash []byte) [32]byte {
	b := append(append(append([]byte{}, group[:]...), salt...), hash...)
	return sha256.Sum256(b)
}

// keyChecksum is the checksum a sensor's install key carries: SHA-256 of
// the group's 16 bytes and the secret.
func keyChecksum(group uuid.UUID, secret []byte) [32]byte {
	return sha256.Sum256(append(append([]byte{}, group[:]...), secret...))
}

func secretHash(secret, salt []byte) []byte {
	h, err := pbkdf2.Key(sha256.New, string(secret), salt, wlHashIterations, 32)
	if err != nil { // only for FIPS-mode parameter limits, which these meet
		return nil
	}
	return h
}

// installKey is the key a sensor presents on /install.
type installKey struct {
	Group    uuid.UUID
	Secret   []byte
	Checksum []byte
}

// verify checks the key's checksum and its secret against the verifiers
// of its group, in constant time.
func (k installKey) verify(verifiers []installVerifier) bool {
	sum := keyChecksum(k.Group, k.Secret)
	if subtle.ConstantTimeCompare(sum[:], k.Checksum) != 1 {
		return false
	}
	ok := false
	for _, v := range verifiers {
		if v.group != k.Group {
			continue
		}
		if h := secretHash(k.Secret, v.salt); h != nil && subtle.ConstantTimeCompare(h, v.hash) == 1 {
			ok = true
		}
	}
	return ok
}

// sensorClaims are the claims of a sensor token, as the Weaklayer gateway
// writes them.
type sensorClaims struct {
	Group  string `json:"group"`
	Sensor string `json:"sensor"`
	jwt.RegisteredClaims
}

// tokens issues and verifies sensor tokens.
type tokens struct {
	keys [][]byte // keys[0] signs
	ttl  time.Duration
	now  func() time.Time
}

// errTokenExpired distinguishes an expired token (well signed) from a bad one.
var errTokenExpired = errors.New("the token has expired")

// issue signs a token for the sensor.
func (t *tokens) issue(group, sensor uuid.UUID) (string, time.Time, time.Time, error) {
	if len(t.keys) == 0 {
		return "", time.Time{}, time.Time{}, errors.New("no signing secret configured")
	}
	iat := t.now().UTC().Truncate(time.Second)
	exp := iat.Add(t.ttl)
	c := sensorClaims{Group: group.String(), Sensor: sensor.String(), RegisteredClaims: jwt.RegisteredClaims{
		IssuedAt: jwt.NewNumericDate(iat), NotBefore: jwt.NewNumericDate(iat), ExpiresAt: jwt.NewNumericDate(exp),
	}}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(t.keys[0])
	if err != nil {
		return "", time.Time{}, time.Time{}, fmt.Errorf("signing token: %w", err)
	}
	return s, iat, exp, nil
}

// verify checks the token against the current and the previous secrets and
// returns its group and sensor.
func (t *tokens) verify(tok string) (group, sensor uuid.UUID, err error) {
	if tok == "" || len(tok) > 4096 {
		return group, sensor, errors.New("the token is malformed")
	}
	expired := false
	for _, key := range t.keys {
		var c sensorClaims
		_, perr := jwt.ParseWithClaims(tok, &c, func(*jwt.Token) (any, error) { return key, nil },
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(5*time.Second),
			jwt.WithTimeFunc(t.now))
		if perr != nil {
			if errors.Is(perr, jwt.ErrTokenExpired) {
				expired = true
			}
			continue
		}
		g, gerr := uuid.Parse(c.Group)
		s, serr := uuid.Parse(c.Sensor)
		if gerr != nil || serr != nil {
			return group, sensor, errors.New("the token's group or sensor is not a UUID")
		}
		return g, s, nil
	}
	if expired {
		return group, sensor, errTokenExpired
	}
	return group, sensor, errors.New("the token is not valid")
}

// DevInstallKey is a generated group install key: the JSON object a sensor
// sends as "key".
type DevInstallKey struct {
	Group    string `json:"group"`
	Secret   string `json:"secret"`
	Checksum string `json:"checksum"`
}

// NewInstallKey generates a group install key and its verifier.
func NewInstallKey() (DevInstallKey, WeaklayerInstallKey, error) {
	group := uuid.New()
	secret := make([]byte, wlSecretBytes)
	salt := make([]byte, 16)
	if _, err := rand.Read(secret); err != nil {
		return DevInstallKey{}, WeaklayerInstallKey{}, err
	}
	if _, err := rand.Read(salt); err != nil {
		return DevInstallKey{}, WeaklayerInstallKey{}, err
	}
	return installKeyPair(group, secret, salt)
}

func installKeyPair(group uuid.UUID, secret, salt []byte) (DevInstallKey, WeaklayerInstallKey, error) {
	sum := keyChecksum(group, secret)
	hash := secretHash(secret, salt)
	if hash == nil {
		return DevInstallKey{}, WeaklayerInstallKey{}, errors.New("hashing the install key")
	}
	vsum := verifierChecksum(group, salt, hash)
	b64 := base64.StdEncoding.EncodeToString
	return DevInstallKey{Group: group.String(), Secret: b64(secret), Checksum: b64(sum[:])},
		WeaklayerInstallKey{Group: group.String(), Salt: b64(salt), SecretHash: b64(hash), Checksum: b64(vsum[:])}, nil
}

// EnableDevInstallKey gives the standalone mode a working Weaklayer group:
// it reads the install key at path, or generates one and writes it there
// (0600), and adds its verifier to c. When c has no signing secret it adds
// one derived from the key's secret, so tokens survive a restart without a
// second file. For development only: the key file holds the secret.
func EnableDevInstallKey(c *WeaklayerConfig, path string) error {
	var key DevInstallKey
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &key); err != nil {
			return fmt.Errorf("reading %s: %w", path, err)
		}
	case errors.Is(err, os.ErrNotExist):
		k, _, err := NewInstallKey()
		if err != nil {
			return fmt.Errorf("generating the dev install key: %w", err)
		}
		key = k
		out, _ := json.MarshalIndent(key, "", "  ")
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
		if err := os.WriteFile(path, append(out, '\n'), 0o600); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
	default:
		return fmt.Errorf("reading %s: %w", path, err)
	}
	group, err := uuid.Parse(key.Group)
	if err != nil {
		return fmt.Errorf("%s: group is not a UUID", path)
	}
	secret, err := base64.StdEncoding.DecodeString(key.Secret)
	if err != nil || len(secret) != wlSecretBytes {
		return fmt.Errorf("%s: secret is not base64 of %d bytes", path, wlSecretBytes)
	}
	// The salt only has to differ between keys; deriving it from the group
	// keeps the verifier stable across restarts.
	salt := group[:]
	_, verifier, err := installKeyPair(group, secret, salt)
	if err != nil {
		return err
	}
	present := false
	for _, k := range c.InstallKeys {
		present = present || k.Group == verifier.Group
	}
	if !present {
		c.InstallKeys = append(c.InstallKeys, verifier)
	}
	if len(c.SigningSecrets) == 0 {
		d := sha256.Sum256(append([]byte("sluice dev weaklayer token signing\x00"), secret...))
		c.SigningSecrets = []config.Secret{config.Secret("base64:" + base64.StdEncoding.EncodeToString(d[:]))}
	}
	return nil
}
