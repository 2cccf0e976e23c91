package avro

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/schemas"
)

// fakeRegistry starts an srfake registry that counts schema-by-id fetches.
func fakeRegistry(t *testing.T) (*srfake.Registry, *sr.Client, *atomic.Int32) {
	t.Helper()
	reg := srfake.New()
	t.Cleanup(reg.Close)
	var fetches atomic.Int32
	reg.Intercept(func(_ http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/schemas/ids/") {
			fetches.Add(1)
		}
		return false
	})
	return reg, newClient(t, reg.URL()), &fetches
}

func newClient(t *testing.T, u string) *sr.Client {
	t.Helper()
	cl, err := sr.NewClient(sr.URLs(u))
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

const otherSchema = `{"type":"record","name":"Other","namespace":"t","fields":[{"name":"s","type":"string"}]}`

func TestSerdeRegister(t *testing.T) {
	ctx := context.Background()
	_, cl, _ := fakeRegistry(t)
	s := NewSerde(cl)

	c1, err := s.Register(ctx, "points-value", pointSchema)
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	if c1.ID <= 0 {
		t.Fatalf("registered id = %d", c1.ID)
	}
	c2, err := s.Register(ctx, "points-value", pointSchema)
	if err != nil {
		t.Fatalf("second Register: %v", err)
	}
	if c2.ID != c1.ID {
		t.Fatalf("second Register gave id %d, first %d", c2.ID, c1.ID)
	}
	if got, err := s.Subject("points-value"); err != nil || got != c2 {
		t.Fatalf("Subject = %p, %v; want the latest codec %p", got, err, c2)
	}
	// Another Serde (another service) registering the same schema gets the
	// same id.
	c3, err := NewSerde(cl).Register(ctx, "points-value", pointSchema)
	if err != nil || c3.ID != c1.ID {
		t.Fatalf("other Serde: id %d, %v; want %d", c3.ID, err, c1.ID)
	}
	o, err := s.Register(ctx, "others-value", otherSchema)
	if err != nil || o.ID == c1.ID {
		t.Fatalf("other schema: id %d, %v", o.ID, err)
	}

	wire, err := s.Encode("points-value", map[string]any{"x": int64(3), "label": nil})
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	if id, _, _ := SplitWire(wire); id != c1.ID {
		t.Fatalf("encoded with id %d, want %d", id, c1.ID)
	}
	if _, err := s.Encode("nope-value", nil); !errors.Is(err, ErrUnknownSubject) {
		t.Fatalf("Encode unknown subject = %v", err)
	}
	if _, err := s.Register(ctx, "bad-value", `{"type":"nope"}`); err == nil || !strings.Contains(err.Error(), "bad-value") {
		t.Fatalf("Register of a bad schema = %v", err)
	}
	if _, err := NewSerde(nil).Register(ctx, "points-value", pointSchema); err == nil {
		t.Fatal("Register without a registry succeeded")
	}
}

func TestSerdeDecodeFetchesAndCaches(t *testing.T) {
	ctx := context.Background()
	_, cl, fetches := fakeRegistry(t)
	writer := NewSerde(cl)
	wc, err := writer.Register(ctx, "points-value", pointSchema)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := writer.Register(ctx, "others-value", otherSchema); err != nil {
		t.Fatal(err)
	}
	wire, err := writer.Encode("points-value", map[string]any{"x": int64(5), "label": String("five")})
	if err != nil {
		t.Fatal(err)
	}
	other, err := writer.Encode("others-value", map[string]any{"s": "x"})
	if err != nil {
		t.Fatal(err)
	}

	fetches.Store(0) // registering may look its schema up again

	// The writer knows its own ids and never asks.
	if _, _, err := writer.Decode(ctx, wire); err != nil || fetches.Load() != 0 {
		t.Fatalf("writer Decode: %v, %d fetches", err, fetches.Load())
	}

	reader := NewSerde(cl)
	for i := range 3 {
		v, c, err := reader.Decode(ctx, wire)
		if err != nil {
			t.Fatalf("Decode %d: %v", i, err)
		}
		if c.ID != wc.ID {
			t.Fatalf("codec id %d, want %d", c.ID, wc.ID)
		}
		m := v.(map[string]any)
		if m["x"] != int64(5) || UnionString(m["label"]) != "five" {
			t.Fatalf("decoded %v", m)
		}
	}
	if n := fetches.Load(); n != 1 {
		t.Fatalf("%d fetches for one unknown id, want 1", n)
	}
	// Codec by id serves from the cache too.
	if c, err := reader.Codec(ctx, wc.ID); err != nil || c.ID != wc.ID || fetches.Load() != 1 {
		t.Fatalf("Codec: %v, %v, %d fetches", c, err, fetches.Load())
	}
	// The fetched codec is not an encoding codec for any subject.
	if _, err := reader.Subject("points-value"); !errors.Is(err, ErrUnknownSubject) {
		t.Fatalf("Subject after decode = %v", err)
	}

	// Many goroutines meeting one new id fetch it once.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := reader.Decode(ctx, other); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent Decode: %v", err)
	}
	if n := fetches.Load(); n != 2 {
		t.Fatalf("%d fetches after a second id, want 2", n)
	}
}

func TestSerdeDecodeErrors(t *testing.T) {
	reg, cl, _ := fakeRegistry(t)
	writer := NewSerde(cl)
	wc, err := writer.Register(context.Background(), "points-value", pointSchema)
	if err != nil {
		t.Fatal(err)
	}
	good, err := writer.Encode("points-value", map[string]any{"x": int64(1), "label": nil})
	if err != nil {
		t.Fatal(err)
	}
	withID := func(id int, body ...byte) []byte {
		return append([]byte{0, byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id)}, body...)
	}
	// failing makes the registry answer every schema-by-id request with
	// status and body while it is set.
	var failing atomic.Pointer[[2]string]
	reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		f := failing.Load()
		if f == nil || !strings.HasPrefix(r.URL.Path, "/schemas/ids/") {
			return false
		}
		code := map[string]int{"503": 503, "500": 500, "429": 429, "401": 401, "200": 200}[f[0]]
		w.WriteHeader(code)
		_, _ = w.Write([]byte(f[1]))
		return true
	})
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	closed := srfake.New()
	closedURL := closed.URL()
	closed.Close()

	for _, tc := range []struct {
		name      string
		serde     *Serde
		ctx       context.Context
		value     []byte
		fail      *[2]string
		transient bool
		is        error
		status    int
	}{
		{name: "not the wire format", value: []byte(`{"json":true}`), is: ErrNotConfluent},
		{name: "empty value", value: nil, is: ErrNotConfluent},
		{name: "id the registry lacks", value: withID(wc.ID + 1000), status: 404},
		{name: "bytes that do not match the schema", serde: writer, value: withID(wc.ID, 0x80)},
		{name: "trailing bytes", serde: writer, value: append(append([]byte(nil), good...), 1, 2)},
		{name: "registry unavailable", value: good, fail: &[2]string{"503", `{"error_code":50301,"message":"down"}`}, transient: true, status: 503},
		{name: "registry error", value: good, fail: &[2]string{"500", ""}, transient: true, status: 500},
		{name: "registry throttles", value: good, fail: &[2]string{"429", ""}, transient: true, status: 429},
		{name: "registry refuses credentials", value: good, fail: &[2]string{"401", `{"error_code":401,"message":"unauthorized"}`}, transient: true, status: 401},
		{name: "registry answers garbage", value: good, fail: &[2]string{"200", "<html>proxy</html>"}, transient: true},
		{name: "registry unreachable", serde: NewSerde(newClient(t, closedURL)), value: good, transient: true},
		{name: "context cancelled", ctx: cancelled, value: good, transient: true, is: context.Canceled},
		{name: "no registry", serde: NewSerde(nil), value: good},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.serde
			if s == nil {
				s = NewSerde(cl)
			}
			ctx := tc.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			failing.Store(tc.fail)
			defer failing.Store(nil)
			v, c, err := s.Decode(ctx, tc.value)
			if err == nil {
				t.Fatalf("Decode = %v, %v, nil", v, c)
			}
			if v != nil || c != nil {
				t.Errorf("Decode returned a value with its error: %v, %v", v, c)
			}
			if got := IsTransient(err); got != tc.transient {
				t.Errorf("IsTransient(%v) = %v, want %v", err, got, tc.transient)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tc.is)
			}
			var re *sr.ResponseError
			if tc.status != 0 && (!errors.As(err, &re) || re.StatusCode != tc.status) {
				t.Errorf("error %v does not carry status %d", err, tc.status)
			}
			if tc.fail != nil {
				// A transient failure is not cached: once the registry
				// answers, the same value decodes.
				failing.Store(nil)
				if _, _, err := s.Decode(ctx, tc.value); err != nil {
					t.Errorf("Decode after the registry recovered: %v", err)
				}
			}
		})
	}
}

func TestIsTransient(t *testing.T) {
	fetching := func(err error) error { return fmt.Errorf("fetching schema id 7: %w", err) }
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"not wire format", ErrNotConfluent, false},
		{"unknown subject", ErrUnknownSubject, false},
		{"unknown schema id", fetching(&sr.ResponseError{StatusCode: 404, ErrorCode: 40403}), false},
		{"bad request", fetching(&sr.ResponseError{StatusCode: 400}), false},
		{"unprocessable", fetching(&sr.ResponseError{StatusCode: 422, ErrorCode: 42201}), false},
		{"registry unreachable", fetching(&url.Error{Op: "Get", URL: "http://registry", Err: errors.New("connection refused")}), true},
		{"registry unavailable", fetching(&sr.ResponseError{StatusCode: 503}), true},
		{"registry internal error", fetching(&sr.ResponseError{StatusCode: 500, ErrorCode: 50001}), true},
		{"registry throttles", fetching(&sr.ResponseError{StatusCode: 429}), true},
		{"registry timeout status", fetching(&sr.ResponseError{StatusCode: 408}), true},
		{"registry unauthorized", fetching(&sr.ResponseError{StatusCode: 401}), true},
		{"registry forbidden", fetching(&sr.ResponseError{StatusCode: 403}), true},
		{"other registry failure", fetching(registryError{errors.New("unable to read response body")}), true},
		{"cancelled", fetching(context.Canceled), true},
		{"deadline", fetching(context.DeadlineExceeded), true},
		{"bad body", errors.New("decoding with schema id 1: short buffer"), false},
		{"bad schema", fmt.Errorf("schema id 7: %w", errors.New("compiling schema: bad")), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsTransient(tc.err); got != tc.want {
				t.Fatalf("IsTransient(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

func TestConnectLookupOnly(t *testing.T) {
	ctx := context.Background()
	reg, _, _ := fakeRegistry(t)
	lookup := RegistryConfig{URLs: []string{reg.URL()}, AutoRegister: false}

	_, err := Connect(ctx, lookup)
	if err == nil {
		t.Fatal("lookup-only Connect to an empty registry succeeded")
	}
	var re *sr.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 404 || !strings.Contains(err.Error(), "-value") {
		t.Fatalf("lookup-only Connect = %v, want a 404 naming the subject", err)
	}
	if reg.SubjectExists(ValueSubject(event.RawTopic(event.EdX))) {
		t.Fatal("lookup-only Connect registered a subject")
	}

	registered, err := Connect(ctx, RegistryConfig{URLs: []string{reg.URL()}, AutoRegister: true})
	if err != nil {
		t.Fatalf("registering Connect: %v", err)
	}
	looked, err := Connect(ctx, lookup)
	if err != nil {
		t.Fatalf("lookup-only Connect after registration: %v", err)
	}
	subj := ValueSubject(event.DLQTopic)
	a, _ := registered.Subject(subj)
	b, _ := looked.Subject(subj)
	if a == nil || b == nil || a.ID != b.ID {
		t.Fatalf("lookup found %v, registered %v", b, a)
	}
}

func TestRegisterAll(t *testing.T) {
	ctx := context.Background()
	reg, cl, _ := fakeRegistry(t)
	s := NewSerde(cl)
	if err := RegisterAll(ctx, s); err != nil {
		t.Fatalf("RegisterAll: %v", err)
	}
	want := map[string]string{ValueSubject(event.DLQTopic): schemas.DLQ}
	for _, f := range event.Families {
		want[ValueSubject(event.RawTopic(f))] = string(f)
		want[ValueSubject(event.EnrichedTopic(f))] = string(f)
	}
	if len(want) != 2*len(event.Families)+1 {
		t.Fatalf("subjects collide: %v", want)
	}
	ids := map[string]int{}
	for subj, name := range want {
		t.Run(subj, func(t *testing.T) {
			c, err := s.Subject(subj)
			if err != nil {
				t.Fatal(err)
			}
			if c.ID <= 0 {
				t.Fatalf("id %d", c.ID)
			}
			ids[subj] = c.ID
			text, err := schemas.Latest(name)
			if err != nil {
				t.Fatal(err)
			}
			if c.Schema != text {
				t.Fatalf("subject %s holds another schema than %s's latest", subj, name)
			}
			if !reg.SubjectExists(subj) {
				t.Fatalf("registry lacks subject %s", subj)
			}
		})
	}

	// Running it again (every service does at start) changes nothing.
	again := NewSerde(cl)
	if err := RegisterAll(ctx, again); err != nil {
		t.Fatalf("second RegisterAll: %v", err)
	}
	for subj, id := range ids {
		if c, _ := again.Subject(subj); c == nil || c.ID != id {
			t.Errorf("subject %s: id %v after re-registering, want %d", subj, c, id)
		}
	}
}

func TestRegistryConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  RegistryConfig
		want []string
	}{
		{"defaults", RegistryDefaults(), nil},
		{"with credentials", RegistryConfig{URLs: []string{"http://r"}, Username: "u", Password: "p"}, nil},
		{"everything wrong", RegistryConfig{Username: "u"}, []string{"urls: at least one registry URL is required", "username and password go together"}},
		{"password alone", RegistryConfig{URLs: []string{"http://r"}, Password: "p"}, []string{"username and password go together"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Validate = %v", err)
				}
				return
			}
			if err == nil || err.Error() != strings.Join(tc.want, "\n") {
				t.Fatalf("Validate = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestRegistryBasicAuth(t *testing.T) {
	reg := srfake.New(srfake.WithAuth("Basic dTpzM2NyZXQ=")) // u:s3cret
	t.Cleanup(reg.Close)
	cfg := RegistryConfig{URLs: []string{reg.URL()}, Username: "u", Password: "s3cret", AutoRegister: true}
	if _, err := Connect(context.Background(), cfg); err != nil {
		t.Fatalf("Connect with credentials: %v", err)
	}
	cfg.Password = "wrong"
	if _, err := Connect(context.Background(), cfg); err == nil {
		t.Fatal("Connect with a wrong password succeeded")
	}
}
