package standalone

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"
	"go.uber.org/zap"
)

// registry is the embedded Confluent-compatible schema registry (srfake)
// served on a fixed address. srfake keeps its state in memory, so the
// subjects are saved to the data directory and seeded again at start: ids
// written into Kafka records keep resolving after a restart.
type registry struct {
	addr  string
	file  string
	log   *zap.Logger
	reg   *srfake.Registry
	srv   *http.Server
	ln    net.Listener
	saved []savedSchema
}

type savedSchema struct {
	Subject string `json:"subject"`
	Version int    `json:"version"`
	ID      int    `json:"id"`
	Schema  string `json:"schema"`
}

func newRegistry(addr, dataDir string, log *zap.Logger) (_ *registry, err error) {
	defer func() {
		// srfake's SeedSchema panics on an invalid entry.
		if p := recover(); p != nil {
			err = fmt.Errorf("saved registry %s is corrupt: %v", filepath.Join(dataDir, "registry.json"), p)
		}
	}()
	r := &registry{addr: addr, file: filepath.Join(dataDir, "registry.json"), log: log, reg: srfake.New()}
	b, err := os.ReadFile(r.file)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("reading saved registry: %w", err)
	default:
		if err := json.Unmarshal(b, &r.saved); err != nil {
			return nil, fmt.Errorf("saved registry %s is corrupt: %w", r.file, err)
		}
		sort.Slice(r.saved, func(i, j int) bool {
			a, b := r.saved[i], r.saved[j]
			if a.ID != b.ID {
				return a.ID < b.ID
			}
			if a.Subject != b.Subject {
				return a.Subject < b.Subject
			}
			return a.Version < b.Version
		})
		seeded := map[int]bool{}
		for _, s := range r.saved {
			sch := sr.Schema{Schema: s.Schema, Type: sr.TypeAvro}
			if !seeded[s.ID] {
				r.reg.SeedSchema(s.Subject, s.Version, s.ID, sch)
				seeded[s.ID] = true
				continue
			}
			// The same schema under another subject (raw and enriched
			// topics share schemas): registering reuses its id.
			if id, _, err := r.reg.RegisterSchema(s.Subject, sch); err != nil || id != s.ID {
				return nil, fmt.Errorf("restoring subject %s: got id %d, want %d (%v)", s.Subject, id, s.ID, err)
			}
		}
	}
	return r, nil
}

func (r *registry) Name() string { return "registry" }

// Start is idempotent: Build starts the registry early (the services need
// their schemas registered to be built) and app.Run calls Start again.
func (r *registry) Start(context.Context) error {
	if r.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		return fmt.Errorf("registry listening on %s: %w", r.addr, err)
	}
	r.ln = ln
	r.srv = &http.Server{Handler: r.reg.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := r.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.log.Error("registry server stopped", zap.Error(err))
		}
	}()
	return nil
}

func (r *registry) URL() string { return "http://" + r.ln.Addr().String() }

// save writes every subject version to the data directory.
func (r *registry) save(ctx context.Context) error {
	cl, err := sr.NewClient(sr.URLs(r.URL()))
	if err != nil {
		return err
	}
	subjects, err := cl.Subjects(ctx)
	if err != nil {
		return fmt.Errorf("listing subjects: %w", err)
	}
	var out []savedSchema
	for _, subj := range subjects {
		vs, err := cl.SubjectVersions(ctx, subj)
		if err != nil {
			return err
		}
		for _, v := range vs {
			ss, err := cl.SchemaByVersion(ctx, subj, v)
			if err != nil {
				return err
			}
			out = append(out, savedSchema{Subject: subj, Version: ss.Version, ID: ss.ID, Schema: ss.Schema.Schema})
		}
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	tmp := r.file + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, r.file)
}

func (r *registry) Stop(ctx context.Context) error {
	defer r.reg.Close()
	if r.srv == nil {
		return nil
	}
	return r.srv.Shutdown(ctx)
}
