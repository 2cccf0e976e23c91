// Command sluice-drill runs the gateway's acceptance drills (issue 8,
// docs/benchmarks.md "Drills"): the gateway runs as its own process
// (bin/sluice-gateway) against a broker in another process, and a load
// generator in this one drives it through a failure, then checks what the
// clients were told against what is in Kafka.
//
//	sluice-drill kill9        SIGKILL the gateway mid-load several times; every acknowledged event is in Kafka
//	sluice-drill overload     twice the measured capacity for 30 s: RSS, statuses, p99 of accepted requests
//	sluice-drill broker-down  stop the broker for 20 s under load: 503 + Retry-After, /readyz, recovery
//	sluice-drill slowloris    500 slow connections, 20 MB bodies, gzip bombs, 10,000-deep JSON
//	sluice-drill sigterm      SIGTERM under load: truthful answers, drain, exit; a second signal exits at once
//	sluice-drill all          every drill, one after the other
//
// The broker is the real Kafka in KAFKA_BROKERS when it is set (.ci/kafka.sh
// up; the broker-down drill then stops and starts its nodes with
// SLUICE_KAFKA_CTL), else a kfake broker with a data directory in a child
// process of this binary (sluice-drill re-executes itself with
// SLUICE_DRILL_ROLE=broker), stopped and restarted like a real one. The
// schema registry is an in-process srfake. Everything listens on loopback;
// every load loop is bounded in requests and time.
//
// The drill exits 1 when a check fails. -markdown prints the results as the
// table rows docs/benchmarks.md keeps.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

func main() {
	switch os.Getenv(roleEnv) {
	case "broker":
		os.Exit(brokerMain())
	case "gateway":
		os.Exit(gatewayMain())
	}
	var o options
	fs := flag.NewFlagSet("sluice-drill", flag.ExitOnError)
	fs.StringVar(&o.gateway, "gateway", "", "path to sluice-gateway (default: next to this binary)")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (logs, broker data)")
	fs.BoolVar(&o.verbose, "v", false, "print progress")
	fs.BoolVar(&o.markdown, "markdown", false, "print the results as markdown too")
	fs.DurationVar(&o.duration, "duration", 0, "load time of the drill (0: the drill's default)")
	fs.IntVar(&o.kills, "kills", 5, "kill9: SIGKILLs of the gateway")
	fs.DurationVar(&o.downFor, "down", 20*time.Second, "broker-down: how long the broker stays down")
	fs.IntVar(&o.slowConns, "slow-conns", 500, "slowloris: slow connections")
	fs.Func("gateway-env", "extra gateway setting as SLUICE_X=value (repeatable), e.g. SLUICE_BACKPRESSURE_MAX_INFLIGHT_REQUESTS=32", func(s string) error {
		if !strings.HasPrefix(s, "SLUICE_") || !strings.Contains(s, "=") {
			return fmt.Errorf("%q is not SLUICE_X=value", s)
		}
		o.gatewayEnv = append(o.gatewayEnv, s)
		return nil
	})
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: sluice-drill [flags] kill9|overload|broker-down|slowloris|sigterm|all\n")
		fs.PrintDefaults()
	}
	_ = fs.Parse(os.Args[1:])
	if fs.NArg() != 1 {
		fs.Usage()
		os.Exit(2)
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "sluice-drill:", err)
		os.Exit(1)
	}
	if o.gateway == "" {
		o.gateway = filepath.Join(filepath.Dir(exe), "sluice-gateway")
	}
	if _, err := os.Stat(o.gateway); err != nil {
		fmt.Fprintf(os.Stderr, "sluice-drill: %v (run `make build` first)\n", err)
		os.Exit(1)
	}
	o.gatewaySpec = childSpec{path: o.gateway}
	o.brokerSpec = childSpec{path: exe, env: []string{roleEnv + "=broker"}}
	o.logf = func(format string, a ...any) {
		if o.verbose {
			fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, a...))
		}
	}
	names := []string{fs.Arg(0)}
	if fs.Arg(0) == "all" {
		names = []string{"slowloris", "sigterm", "kill9", "broker-down", "overload"}
	}
	failed := false
	for _, name := range names {
		d, ok := drills[name]
		if !ok {
			fs.Usage()
			os.Exit(2)
		}
		fmt.Printf("== drill %s (%s)\n", name, brokerKind())
		t0 := time.Now()
		res, err := d(o)
		if err != nil {
			fmt.Printf("drill %s could not run: %v\n", name, err)
			failed = true
			continue
		}
		res.took = time.Since(t0)
		res.print(os.Stdout, o.markdown)
		failed = failed || !res.ok()
	}
	if failed {
		os.Exit(1)
	}
}

// drills by name.
var drills = map[string]func(options) (*result, error){
	"kill9":       drillKill9,
	"overload":    drillOverload,
	"broker-down": drillBrokerDown,
	"slowloris":   drillSlowloris,
	"sigterm":     drillSIGTERM,
}

// options configure a drill run.
type options struct {
	gateway     string
	gatewaySpec childSpec // how to start a gateway process
	brokerSpec  childSpec // how to start a kfake broker process
	keep        bool
	verbose     bool
	markdown    bool
	duration    time.Duration
	kills       int
	downFor     time.Duration
	slowConns   int
	gatewayEnv  []string // extra settings for every gateway the drills start
	noRSS       bool     // report memory without checking it (tests: a -race gateway)
	logf        func(format string, a ...any)
}

// check is one acceptance criterion and whether it held.
type check struct {
	name   string
	ok     bool
	detail string
}

// result is what a drill measured.
type result struct {
	name   string
	took   time.Duration
	facts  [][2]string // name, value
	checks []check
}

func (r *result) fact(name, format string, a ...any) {
	r.facts = append(r.facts, [2]string{name, fmt.Sprintf(format, a...)})
}

// memCheck is a memory check, or only a fact when the options say so.
func (r *result) memCheck(o options, name string, ok bool, format string, a ...any) {
	if o.noRSS {
		r.fact(name+" (not checked)", format, a...)
		return
	}
	r.check(name, ok, format, a...)
}

func (r *result) check(name string, ok bool, format string, a ...any) {
	r.checks = append(r.checks, check{name: name, ok: ok, detail: fmt.Sprintf(format, a...)})
}

func (r *result) ok() bool {
	for _, c := range r.checks {
		if !c.ok {
			return false
		}
	}
	return true
}

func (r *result) failures() []string {
	var out []string
	for _, c := range r.checks {
		if !c.ok {
			out = append(out, c.name+": "+c.detail)
		}
	}
	return out
}

func (r *result) print(w *os.File, markdown bool) {
	for _, f := range r.facts {
		fmt.Fprintf(w, "  %-44s %s\n", f[0], f[1])
	}
	for _, c := range r.checks {
		mark := "PASS"
		if !c.ok {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "  %s  %-40s %s\n", mark, c.name, c.detail)
	}
	verdict := "PASSED"
	if !r.ok() {
		verdict = "FAILED"
	}
	fmt.Fprintf(w, "drill %s %s in %s\n\n", r.name, verdict, r.took.Round(time.Second))
	if markdown {
		fmt.Fprintf(w, "| %s | value |\n|---|---|\n", r.name)
		for _, f := range r.facts {
			fmt.Fprintf(w, "| %s | %s |\n", f[0], strings.ReplaceAll(f[1], "|", "\\|"))
		}
		for _, c := range r.checks {
			mark := "pass"
			if !c.ok {
				mark = "**FAIL**"
			}
			fmt.Fprintf(w, "| %s | %s: %s |\n", c.name, mark, strings.ReplaceAll(c.detail, "|", "\\|"))
		}
		fmt.Fprintln(w)
	}
}
