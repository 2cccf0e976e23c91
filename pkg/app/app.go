// Package app runs a service's components: it starts them in order, waits
// for a signal or a component failure, and stops them in reverse order
// within a time limit. A second signal exits at once.
package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// Component is one part of a service with an explicit lifecycle.
//
// Start must return quickly, leaving background work running; Stop must
// drain that work (finish in-flight requests, flush buffers, commit) and
// return by the context's deadline. Stop is called only for started
// components, at most once.
type Component interface {
	Name() string
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// Failer is implemented by components that can fail after Start; a value on
// the channel stops the service.
type Failer interface {
	Failed() <-chan error
}

// Run starts comps in order, waits for SIGINT/SIGTERM, ctx's end or a
// component failure, then stops the started components in reverse order,
// all within timeout. It returns the failure or stop errors, joined. A
// component whose Stop ignores the timeout is abandoned shortly after it,
// with the components still to stop, so that Run always returns.
func Run(ctx context.Context, log *zap.Logger, timeout time.Duration, comps ...Component) error {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	return run(ctx, log, timeout, sigs, func() { os.Exit(1) }, comps...)
}

func run(ctx context.Context, log *zap.Logger, timeout time.Duration, sigs <-chan os.Signal, exitNow func(), comps ...Component) error {
	started := make([]Component, 0, len(comps))
	failed := make(chan error, len(comps))
	watching := make(chan struct{}) // closed when run returns, ending the Failed watchers
	defer close(watching)
	var runErr error
	for _, c := range comps {
		if err := c.Start(ctx); err != nil {
			runErr = fmt.Errorf("starting %s: %w", c.Name(), err)
			break
		}
		log.Debug("started", zap.String("component", c.Name()))
		started = append(started, c)
		if f, ok := c.(Failer); ok {
			name := c.Name()
			go func() {
				select {
				case err, ok := <-f.Failed():
					if ok && err != nil {
						failed <- fmt.Errorf("%s: %w", name, err) // buffered for every component
					}
				case <-watching:
				}
			}()
		}
	}
	if runErr == nil {
		select {
		case s := <-sigs:
			log.Info("signal received, shutting down", zap.String("signal", s.String()), zap.Duration("timeout", timeout))
		case <-ctx.Done():
			log.Info("shutting down")
		case err := <-failed:
			runErr = err
			log.Error("component failed, shutting down", zap.Error(err))
		}
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	done := make(chan error, 1)
	var stopping atomic.Value // name of the component in Stop
	go func() {
		var errs []error
		for i := len(started) - 1; i >= 0; i-- {
			c := started[i]
			stopping.Store(c.Name())
			t0 := time.Now()
			if err := c.Stop(stopCtx); err != nil {
				errs = append(errs, fmt.Errorf("stopping %s: %w", c.Name(), err))
			}
			log.Debug("stopped", zap.String("component", c.Name()), zap.Duration("took", time.Since(t0)))
		}
		done <- errors.Join(errs...)
	}()
	secondSignal := func(s os.Signal) error {
		log.Warn("second signal, exiting now", zap.String("signal", s.String()))
		_ = log.Sync()
		exitNow()
		return errors.Join(runErr, errors.New("exited on second signal"))
	}
	select {
	case err := <-done:
		if err != nil {
			log.Error("shutdown finished with errors", zap.Error(err))
		} else {
			log.Info("shutdown complete")
		}
		return errors.Join(runErr, err)
	case s := <-sigs:
		return secondSignal(s)
	case <-stopCtx.Done():
	}
	// Components should return once their deadline passes: wait a moment for
	// their errors, but not on one that ignores its context, and leave the
	// components after it unstopped.
	grace := time.NewTimer(stopGrace)
	defer grace.Stop()
	select {
	case err := <-done:
		log.Error("shutdown exceeded its timeout", zap.Duration("timeout", timeout), zap.Error(err))
		return errors.Join(runErr, fmt.Errorf("shutdown exceeded %s", timeout), err)
	case <-grace.C:
		name, _ := stopping.Load().(string)
		log.Error("shutdown exceeded its timeout; abandoning a component that ignores it", zap.Duration("timeout", timeout), zap.String("component", name))
		return errors.Join(runErr, fmt.Errorf("shutdown exceeded %s: %s did not return from Stop", timeout, name))
	case s := <-sigs:
		return secondSignal(s)
	}
}

// stopGrace is how long Run waits past the stop timeout for components to
// report, before it returns without them.
const stopGrace = time.Second

// Func adapts start and stop functions into a Component.
type Func struct {
	N       string
	StartFn func(ctx context.Context) error
	StopFn  func(ctx context.Context) error
}

// Name implements Component.
func (f Func) Name() string { return f.N }

// Start implements Component.
func (f Func) Start(ctx context.Context) error {
	if f.StartFn == nil {
		return nil
	}
	return f.StartFn(ctx)
}

// Stop implements Component.
func (f Func) Stop(ctx context.Context) error {
	if f.StopFn == nil {
		return nil
	}
	return f.StopFn(ctx)
}
