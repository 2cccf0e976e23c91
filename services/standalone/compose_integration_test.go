package standalone

// docker-compose.yml against the code: every SLUICE_* variable a service
// sets must be a setting of the binary its image builds, and the service's
// configuration (its config file, its variables, the binary's defaults) must
// load and validate as that binary would at start. The Compose syntax itself
// is validated by .ci/compose-check.sh with compose-go (docker compose
// config's loader); this test is about what the file means to Sluice.

import (
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/sluicehq/sluice/pkg/config"
)

// composePath is the file checked; SLUICE_COMPOSE_FILE names another (to
// try the test on a broken copy).
var composePath = func() string {
	if p := os.Getenv("SLUICE_COMPOSE_FILE"); p != "" {
		return p
	}
	return "../../docker-compose.yml"
}()

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Configs  map[string]struct {
		Content string `yaml:"content"`
		File    string `yaml:"file"`
	} `yaml:"configs"`
}

type composeService struct {
	Image         string `yaml:"image"`
	ContainerName string `yaml:"container_name"`
	Build         *struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
	Environment any   `yaml:"environment"` // a map or a list of KEY=VALUE
	Ports       []any `yaml:"ports"`
	Configs     []struct {
		Source string `yaml:"source"`
		Target string `yaml:"target"`
	} `yaml:"configs"`
	Healthcheck *struct {
		Test    any  `yaml:"test"`
		Disable bool `yaml:"disable"`
	} `yaml:"healthcheck"`
}

// interpolate resolves ${VAR}, ${VAR:-default} and ${VAR-default} with every
// variable unset (the defaults a fresh `docker compose up` uses), and $$.
var composeVar = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}`)

func interpolate(s string) string {
	return composeVar.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		sub := composeVar.FindStringSubmatch(m)
		return sub[3]
	})
}

func (s composeService) env(t *testing.T, name string) map[string]string {
	t.Helper()
	out := map[string]string{}
	switch e := s.Environment.(type) {
	case nil:
	case map[string]any:
		for k, v := range e {
			if v == nil {
				out[k] = ""
				continue
			}
			out[k] = interpolate(strings.TrimSpace(yamlScalar(v)))
		}
	case []any:
		for _, kv := range e {
			k, v, _ := strings.Cut(yamlScalar(kv), "=")
			out[k] = interpolate(v)
		}
	default:
		t.Errorf("service %s: environment is a %T", name, e)
	}
	return out
}

func yamlScalar(v any) string {
	b, _ := yaml.Marshal(v)
	s := strings.TrimSpace(string(b))
	if len(s) >= 2 && (s[0] == '"' || s[0] == '\'') {
		var str string
		if yaml.Unmarshal(b, &str) == nil {
			return str
		}
	}
	return s
}

// TestComposeFileMatchesConfig reads docker-compose.yml and checks each
// Sluice service against its binary's configuration.
func TestComposeFileMatchesConfig(t *testing.T) {
	b, err := os.ReadFile(composePath)
	if os.IsNotExist(err) {
		t.Skip("no docker-compose.yml yet")
	}
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	if err := yaml.Unmarshal([]byte(interpolate(string(b))), &cf); err != nil {
		t.Fatalf("%s: %v", composePath, err)
	}

	// Which environment names each binary reads.
	settings := map[string]map[string]bool{}
	for _, s := range allSettings(t) {
		if settings[s.binary] == nil {
			settings[s.binary] = map[string]bool{}
		}
		if s.env != "" {
			settings[s.binary][s.env] = true
		}
	}
	binaries := map[string]docBinary{}
	for _, db := range docBinaries() {
		binaries[db.name] = db
	}

	sluiceServices := 0
	for name, svc := range cf.Services {
		if svc.Healthcheck == nil || svc.Healthcheck.Disable || svc.Healthcheck.Test == nil {
			t.Errorf("service %s has no health check", name)
		}
		if svc.Build == nil {
			// A third-party image: pinned to a version.
			if i := strings.LastIndex(svc.Image, ":"); i < 0 || strings.HasSuffix(svc.Image, ":latest") || strings.Contains(svc.Image[i:], "/") {
				t.Errorf("service %s: image %q is not pinned to a version", name, svc.Image)
			}
			continue
		}
		dockerfile := filepath.ToSlash(svc.Build.Dockerfile)
		m := regexp.MustCompile(`^services/([a-z-]+)/Dockerfile$`).FindStringSubmatch(dockerfile)
		if m == nil {
			t.Errorf("service %s builds %s, not a services/<name>/Dockerfile", name, dockerfile)
			continue
		}
		if _, err := os.Stat(filepath.Join("../..", dockerfile)); err != nil {
			t.Errorf("service %s: %v", name, err)
		}
		binary := "sluice-" + m[1]
		db, ok := binaries[binary]
		if !ok {
			t.Errorf("service %s runs %s, whose configuration this test (docBinaries) does not know", name, binary)
			continue
		}
		sluiceServices++
		env := svc.env(t, name)
		t.Run(name, func(t *testing.T) {
			checkComposeService(t, cf, name, svc, binary, db, env, settings[binary])
		})
	}
	if sluiceServices == 0 {
		t.Fatal("docker-compose.yml runs no Sluice service")
	}

	// Scaling: the enricher runs as N replicas of one group.
	if e, ok := cf.Services["enricher"]; ok {
		if e.ContainerName != "" || len(e.Ports) > 0 {
			t.Errorf("enricher has a container_name or published ports: `--scale enricher=3` would fail")
		}
	} else {
		t.Error("docker-compose.yml has no enricher service")
	}
}

func checkComposeService(t *testing.T, cf composeFile, name string, svc composeService, binary string,
	db docBinary, env map[string]string, known map[string]bool) {
	var configFile string
	for k := range env {
		switch {
		case k == "SLUICE_CONFIG":
			configFile = env[k]
		case strings.HasPrefix(k, config.EnvPrefix) && !known[k]:
			t.Errorf("%s sets %s, which %s does not read (see docs/configuration.md)", name, k, binary)
		}
	}
	// Services reached by name must be services of the file.
	for _, k := range []string{"SLUICE_KAFKA_BROKERS", "SLUICE_REGISTRY_URLS"} {
		for _, addr := range strings.Split(env[k], ",") {
			if addr == "" {
				continue
			}
			host := addr
			if i := strings.Index(host, "://"); i >= 0 {
				host = host[i+3:]
			}
			host, _, _ = strings.Cut(host, "/")
			if h, _, err := net.SplitHostPort(host); err == nil {
				host = h
			}
			if _, ok := cf.Services[host]; !ok && host != "localhost" && net.ParseIP(host) == nil {
				t.Errorf("%s: %s names host %q, which is not a service of the file", name, k, host)
			}
		}
	}

	// Load it as the binary does: defaults, the mounted config file, the
	// environment, Validate.
	path := ""
	if configFile != "" {
		for _, c := range svc.Configs {
			if c.Target != configFile {
				continue
			}
			src, ok := cf.Configs[c.Source]
			if !ok {
				t.Fatalf("%s mounts config %q, which the file does not declare", name, c.Source)
			}
			content := src.Content
			if src.File != "" {
				b, err := os.ReadFile(filepath.Join("../..", src.File))
				if err != nil {
					t.Fatal(err)
				}
				content = string(b)
			}
			path = filepath.Join(t.TempDir(), "config.yaml")
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if path == "" {
			t.Fatalf("%s: SLUICE_CONFIG=%s is not the target of any of its configs", name, configFile)
		}
	}
	for _, kv := range os.Environ() { // only the file's variables count
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, config.EnvPrefix) {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	keys := make([]string, 0, len(env))
	for k, v := range env {
		if strings.HasPrefix(k, config.EnvPrefix) && k != "SLUICE_CONFIG" {
			t.Setenv(k, v)
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	cfg := reflect.New(reflect.TypeOf(db.defaults))
	cfg.Elem().Set(reflect.ValueOf(db.defaults))
	v, ok := cfg.Interface().(config.Validator)
	if !ok {
		t.Fatalf("%T is not a config.Validator", cfg.Interface())
	}
	if err := config.Load(path, v); err != nil {
		t.Errorf("%s's configuration in docker-compose.yml does not load as %s would load it:\n%v", name, binary, err)
		return
	}
	t.Logf("%s: %d SLUICE_* variables%s load and validate as %s", name, len(keys),
		map[bool]string{true: " and its config file", false: ""}[path != ""], binary)
}
