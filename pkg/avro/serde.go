package avro

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/sr"
)

// ErrUnknownSubject is returned when encoding for a subject that was never
// registered with this Serde.
var ErrUnknownSubject = errors.New("avro: unknown subject")

// ErrNotConfluent is returned when a value does not start with the
// Confluent magic byte.
var ErrNotConfluent = errors.New("avro: value is not in the Confluent wire format")

// Codec is a compiled schema and its registry id.
type Codec struct {
	ID     int
	Schema string
	codec  *goavro.Codec // compiles and validates the schema; decodes
	shape  *node         // for JSON rendering
	// enc encodes (encode.go); nil for the rare schemas it leaves to
	// goavro (decimal and validated-string logical types).
	enc *encoder
}

// NewCodec compiles a schema text. The id is 0 until registered.
func NewCodec(schema string) (*Codec, error) {
	c, err := goavro.NewCodec(schema)
	if err != nil {
		return nil, fmt.Errorf("compiling schema: %w", err)
	}
	shape, err := parseShape(schema)
	if err != nil {
		return nil, fmt.Errorf("reading schema shape: %w", err)
	}
	// goavro has accepted the schema, so it only remains to read it the
	// way goavro does. Should that ever fail, goavro encodes: slower, but
	// the same bytes.
	enc, err := newEncoder(schema)
	if err != nil {
		enc = nil
	}
	return &Codec{Schema: schema, codec: c, shape: shape, enc: enc}, nil
}

// Encode appends the Confluent wire format of native (magic byte, 4-byte
// schema id, Avro binary) to dst. native is in goavro's form, and union
// values may also be bare (see the package doc). A value that does not
// match the schema is an error worded as goavro words it.
func (c *Codec) Encode(dst []byte, native any) ([]byte, error) {
	dst = append(dst, 0, byte(c.ID>>24), byte(c.ID>>16), byte(c.ID>>8), byte(c.ID))
	var out []byte
	var err error
	if c.enc != nil {
		out, err = c.enc.encode(dst, native)
	} else {
		out, err = c.codec.BinaryFromNative(dst, native)
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// validateBufs holds scratch buffers for Validate, which encodes and
// throws the bytes away.
var validateBufs = sync.Pool{New: func() any { return new([]byte) }}

// Validate reports whether native conforms to the schema, without keeping
// the encoding: it is nil exactly when Encode would succeed.
func (c *Codec) Validate(native any) error {
	if c.enc == nil {
		_, err := c.codec.BinaryFromNative(nil, native)
		return err
	}
	bp := validateBufs.Get().(*[]byte)
	out, err := c.enc.encode((*bp)[:0], native)
	if err == nil && cap(out) <= 64<<10 { // do not pin the odd huge buffer
		*bp = out[:0]
	}
	validateBufs.Put(bp)
	return err
}

// DecodeBody decodes an Avro binary body (without the wire-format header).
func (c *Codec) DecodeBody(b []byte) (any, error) {
	v, rest, err := c.codec.NativeFromBinary(b)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("avro: %d trailing bytes after record", len(rest))
	}
	return v, nil
}

// SplitWire returns the schema id and Avro body of a Confluent-framed value.
func SplitWire(b []byte) (int, []byte, error) {
	if len(b) < 5 || b[0] != 0 {
		return 0, nil, ErrNotConfluent
	}
	id := int(b[1])<<24 | int(b[2])<<16 | int(b[3])<<8 | int(b[4])
	return id, b[5:], nil
}

// Serde encodes by subject and decodes by schema id. Subjects are registered
// once at start; codecs for ids written by other versions are fetched from
// the registry on first sight and cached. It is safe for concurrent use.
type Serde struct {
	reg      *sr.Client
	mu       sync.RWMutex
	bySubj   map[string]*Codec
	byID     map[int]*Codec
	fetching sync.Mutex
	// lookupOnly makes Register look schemas up instead of creating them,
	// for deployments whose pipeline registers schemas.
	lookupOnly bool
}

// NewSerde returns a Serde backed by the registry client (nil for a
// registry-less Serde that only knows what Add gives it, as in tests).
func NewSerde(reg *sr.Client) *Serde {
	return &Serde{reg: reg, bySubj: map[string]*Codec{}, byID: map[int]*Codec{}}
}

// Register registers schema under subject (idempotent: an identical schema
// returns its existing id) and makes it the subject's encoding codec.
func (s *Serde) Register(ctx context.Context, subject, schema string) (*Codec, error) {
	c, err := NewCodec(schema)
	if err != nil {
		return nil, fmt.Errorf("subject %s: %w", subject, err)
	}
	if s.reg == nil {
		return nil, errors.New("avro: no registry configured")
	}
	sch := sr.Schema{Schema: schema, Type: sr.TypeAvro}
	var ss sr.SubjectSchema
	if s.lookupOnly {
		ss, err = s.reg.LookupSchema(ctx, subject, sch)
	} else {
		ss, err = s.reg.CreateSchema(ctx, subject, sch)
	}
	if err != nil {
		return nil, fmt.Errorf("registering subject %s: %w", subject, err)
	}
	c.ID = ss.ID
	s.Add(subject, c)
	return c, nil
}

// Add makes c the codec for subject and for its id.
func (s *Serde) Add(subject string, c *Codec) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if subject != "" {
		s.bySubj[subject] = c
	}
	s.byID[c.ID] = c
}

// Subject returns the encoding codec of subject.
func (s *Serde) Subject(subject string) (*Codec, error) {
	s.mu.RLock()
	c, ok := s.bySubj[subject]
	s.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownSubject, subject)
	}
	return c, nil
}

// Encode encodes native with the codec registered for subject.
func (s *Serde) Encode(subject string, native any) ([]byte, error) {
	c, err := s.Subject(subject)
	if err != nil {
		return nil, err
	}
	return c.Encode(nil, native)
}

// Codec returns the codec for a schema id, fetching it from the registry
// the first time.
func (s *Serde) Codec(ctx context.Context, id int) (*Codec, error) {
	s.mu.RLock()
	c, ok := s.byID[id]
	s.mu.RUnlock()
	if ok {
		return c, nil
	}
	if s.reg == nil {
		return nil, fmt.Errorf("avro: unknown schema id %d and no registry", id)
	}
	s.fetching.Lock()
	defer s.fetching.Unlock()
	s.mu.RLock()
	c, ok = s.byID[id]
	s.mu.RUnlock()
	if ok {
		return c, nil
	}
	sch, err := s.reg.SchemaByID(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("fetching schema id %d: %w", id, registryError{err})
	}
	c, err = NewCodec(sch.Schema)
	if err != nil {
		return nil, fmt.Errorf("schema id %d: %w", id, err)
	}
	c.ID = id
	s.Add("", c)
	return c, nil
}

// Decode decodes a Confluent-framed value and returns its codec with it.
func (s *Serde) Decode(ctx context.Context, value []byte) (any, *Codec, error) {
	id, body, err := SplitWire(value)
	if err != nil {
		return nil, nil, err
	}
	c, err := s.Codec(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	v, err := c.DecodeBody(body)
	if err != nil {
		return nil, nil, fmt.Errorf("decoding with schema id %d: %w", id, err)
	}
	return v, c, nil
}

// Connect builds a Serde for the configured registry and registers (or, with
// AutoRegister off, looks up) every Sluice schema.
func Connect(ctx context.Context, cfg RegistryConfig) (*Serde, error) {
	cl, err := cfg.NewClient()
	if err != nil {
		return nil, err
	}
	s := NewSerde(cl)
	s.lookupOnly = !cfg.AutoRegister
	if err := RegisterAll(ctx, s); err != nil {
		return nil, err
	}
	return s, nil
}
