package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

// The fast drills run as ordinary tests (make test): the test binary plays
// the gateway and the kfake broker in child processes of its own
// (SLUICE_DRILL_ROLE), so no built binary is needed. Memory is reported but
// not checked here (a -race gateway uses several times the memory); the
// make targets (make drills) check it on the real binary.

func TestMain(m *testing.M) {
	switch os.Getenv(roleEnv) {
	case "broker":
		os.Exit(brokerMain())
	case "gateway":
		os.Exit(gatewayMain())
	}
	os.Exit(m.Run())
}

func testOptions(t *testing.T) options {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return options{
		gatewaySpec: childSpec{path: self, env: []string{roleEnv + "=gateway"}},
		brokerSpec:  childSpec{path: self, env: []string{roleEnv + "=broker"}},
		logf:        t.Logf,
		noRSS:       true,
	}
}

func runDrill(t *testing.T, d func(options) (*result, error), o options) {
	t.Helper()
	t0 := time.Now()
	res, err := d(o)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range res.facts {
		t.Logf("%-44s %s", f[0], f[1])
	}
	if !res.ok() {
		t.Fatalf("drill %s failed after %s:\n  %s", res.name, time.Since(t0).Round(time.Second), strings.Join(res.failures(), "\n  "))
	}
}

func TestDrillSlowlorisAndOversizedInput(t *testing.T) {
	o := testOptions(t)
	o.duration = 4 * time.Second
	o.slowConns = 500
	runDrill(t, drillSlowloris, o)
}

func TestDrillSIGTERM(t *testing.T) {
	o := testOptions(t)
	o.duration = 2 * time.Second
	runDrill(t, drillSIGTERM, o)
}

func TestDrillKill9(t *testing.T) {
	o := testOptions(t)
	o.duration = 8 * time.Second
	o.kills = 2
	runDrill(t, drillKill9, o)
}
