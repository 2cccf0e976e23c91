// Command composecheck validates docker-compose.yml the way `docker compose
// config` does, with compose-go, the loader Docker Compose v2 is built on:
// the Compose Specification's JSON schema, interpolation, merge keys and
// anchors, and the model's consistency checks (depends_on targets, configs
// and volumes declared, ...). It prints the services it found.
//
// It lives in its own module (not in go.work) so that the services do not
// depend on compose-go. Run it from the repository root:
//
//	(cd .ci/composecheck && go run . ../../docker-compose.yml)
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: composecheck docker-compose.yml")
		os.Exit(2)
	}
	path, err := filepath.Abs(os.Args[1])
	if err != nil {
		fail(err)
	}
	opts, err := cli.NewProjectOptions([]string{path},
		cli.WithWorkingDirectory(filepath.Dir(path)),
		cli.WithOsEnv,
		cli.WithDotEnv,
		cli.WithResolvedPaths(true),
		cli.WithConsistency(true),
	)
	if err != nil {
		fail(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		fail(err)
	}
	names := make([]string, 0, len(p.Services))
	for name, s := range p.Services {
		desc := s.Image
		if s.Build != nil {
			rel, _ := filepath.Rel(filepath.Dir(path), filepath.Join(s.Build.Context, s.Build.Dockerfile))
			desc += " (build " + rel + ")"
		}
		if s.HealthCheck == nil || s.HealthCheck.Disable {
			desc += " [no health check]"
		}
		names = append(names, fmt.Sprintf("  %-16s %s", name, desc))
	}
	sort.Strings(names)
	fmt.Printf("%s: valid Compose file, project %q, %d services:\n%s\n", os.Args[1], p.Name, len(p.Services), strings.Join(names, "\n"))
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "composecheck: %v\n", err)
	os.Exit(1)
}
