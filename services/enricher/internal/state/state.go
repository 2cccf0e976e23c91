// Package state is the enricher's keyed state: small values keyed by
// <family>/<partition key>/<item>, held per raw topic-partition so an
// instance keeps only the state of the partitions it owns, bounded by age
// and count, with the changes of a batch staged for the changelog topic and
// undone when the batch's transaction aborts.
//
// A Store is used by one goroutine (the enricher's poll loop).
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Value is a state value. It is stored as the JSON of the concrete type;
// a Decoder turns changelog bytes back into the value.
type Value any

// Decoder decodes the changelog value of key. It returns an error for a key
// it does not know, and the entry is skipped.
type Decoder func(key string, data []byte) (Value, error)

// TP is a raw topic-partition, named by its family.
type TP struct {
	Family    string
	Partition int32
}

// Key builds the state key <family>/<partition key>/<item>. The partition
// key is path-escaped, so a "/" in it cannot make two keys collide.
func Key(family, pk, item string) string {
	return family + "/" + url.PathEscape(pk) + "/" + item
}

// FamilyOf returns the family part of a state key.
func FamilyOf(key string) string {
	f, _, _ := strings.Cut(key, "/")
	return f
}

type entry struct {
	key        string
	tp         TP
	value      Value
	updated    int64 // unix ms of the last write (restored from the changelog)
	touched    int64 // unix ms of the last read or write: LRU order and age
	prev, next *entry
}

// undo is an entry's state before the batch first changed it.
type undo struct {
	tp      TP
	key     string
	existed bool
	value   Value
	updated int64
}

// Change is one changelog record to write: Value nil is a tombstone.
type Change struct {
	Key       string
	Partition int32
	Value     []byte
}

// Stats are the store's counters.
type Stats struct {
	Keys           int
	EvictedAge     uint64
	EvictedCount   uint64
	Restored       uint64
	RestoreSkipped uint64 // restored entries older than the age bound
}

// Store holds the state of the partitions this instance owns.
type Store struct {
	maxKeys int
	maxAge  time.Duration

	parts      map[TP]map[string]*entry
	n          int
	head, tail *entry // most and least recently touched

	inBatch bool
	undo    []undo
	undone  map[string]bool // keys with an undo record in this batch
	dirty   map[string]*entry
	tombs   map[string]TP // keys deleted in this batch (tombstones to write)

	stats Stats
}

// New returns a store of at most maxKeys entries, each kept at most maxAge
// after its last read or write (0: no age bound).
func New(maxKeys int, maxAge time.Duration) *Store {
	return &Store{
		maxKeys: maxKeys,
		maxAge:  maxAge,
		parts:   map[TP]map[string]*entry{},
		undone:  map[string]bool{},
		dirty:   map[string]*entry{},
		tombs:   map[string]TP{},
	}
}

// ErrInBatch is returned by operations that must not run inside a batch.
var ErrInBatch = errors.New("state: a batch is open")

// Begin opens a batch: changes from now on are staged for Changes and
// undone by Rollback.
func (s *Store) Begin() {
	s.inBatch = true
}

// Get returns the value of key in tp and marks it used.
func (s *Store) Get(tp TP, key string, now time.Time) (Value, bool) {
	m := s.parts[tp]
	if m == nil {
		return nil, false
	}
	e := m[key]
	if e == nil {
		return nil, false
	}
	e.touched = now.UnixMilli()
	s.moveFront(e)
	return e.value, true
}

// Put sets key in tp to v.
func (s *Store) Put(tp TP, key string, v Value, now time.Time) {
	m := s.parts[tp]
	if m == nil {
		m = map[string]*entry{}
		s.parts[tp] = m
	}
	e := m[key]
	s.saveUndo(tp, key, e)
	ms := now.UnixMilli()
	if e == nil {
		e = &entry{key: key, tp: tp}
		m[key] = e
		s.n++
		s.pushFront(e)
	} else {
		s.moveFront(e)
	}
	e.value, e.updated, e.touched = v, ms, ms
	if s.inBatch {
		s.dirty[key] = e
		delete(s.tombs, key)
	}
}

// Delete removes key from tp.
func (s *Store) Delete(tp TP, key string) {
	e := s.parts[tp][key]
	if e == nil {
		return
	}
	s.saveUndo(tp, key, e)
	s.remove(e)
	if s.inBatch {
		delete(s.dirty, key)
		s.tombs[key] = tp
	}
}

// Evict removes entries unused for longer than the age bound, then the
// least recently used ones beyond the count bound. Inside a batch the
// evictions are changes (tombstones) like any Delete.
func (s *Store) Evict(now time.Time) {
	if s.maxAge > 0 {
		limit := now.Add(-s.maxAge).UnixMilli()
		for s.tail != nil && s.tail.touched < limit {
			s.Delete(s.tail.tp, s.tail.key)
			s.stats.EvictedAge++
		}
	}
	for s.maxKeys > 0 && s.n > s.maxKeys && s.tail != nil {
		s.Delete(s.tail.tp, s.tail.key)
		s.stats.EvictedCount++
	}
}

// Changes returns the changelog records of the open batch: the last value
// of every key written and a tombstone for every key deleted, in key order
// within each partition's writes and deletes.
func (s *Store) Changes() ([]Change, error) {
	out := make([]Change, 0, len(s.dirty)+len(s.tombs))
	for key, e := range s.dirty {
		b, err := encode(e.updated, e.value)
		if err != nil {
			return nil, fmt.Errorf("encoding state %s: %w", key, err)
		}
		out = append(out, Change{Key: key, Partition: e.tp.Partition, Value: b})
	}
	for key, tp := range s.tombs {
		out = append(out, Change{Key: key, Partition: tp.Partition})
	}
	return out, nil
}

// Commit closes the batch, keeping its changes.
func (s *Store) Commit() {
	s.closeBatch()
}

// Rollback closes the batch, undoing its changes in reverse order.
func (s *Store) Rollback() {
	for i := len(s.undo) - 1; i >= 0; i-- {
		u := s.undo[i]
		if e := s.parts[u.tp][u.key]; e != nil {
			s.remove(e)
		}
		if u.existed {
			m := s.parts[u.tp]
			if m == nil {
				m = map[string]*entry{}
				s.parts[u.tp] = m
			}
			e := &entry{key: u.key, tp: u.tp, value: u.value, updated: u.updated, touched: u.updated}
			m[u.key] = e
			s.n++
			s.pushFront(e)
		}
	}
	s.closeBatch()
}

func (s *Store) closeBatch() {
	s.inBatch = false
	s.undo = s.undo[:0]
	clear(s.undone)
	clear(s.dirty)
	clear(s.tombs)
}

// Drop forgets every entry of tp (the partition was revoked or lost). It is
// not a change: the changelog keeps the state for the next owner.
func (s *Store) Drop(tp TP) error {
	if s.inBatch {
		return ErrInBatch
	}
	for _, e := range s.parts[tp] {
		s.unlink(e)
		s.n--
	}
	delete(s.parts, tp)
	return nil
}

// Has reports whether the store holds any entry of tp.
func (s *Store) Has(tp TP) bool { return len(s.parts[tp]) > 0 }

// Restore loads one changelog record of tp: data nil is a tombstone. An
// entry older than the age bound is skipped; the count bound evicts the
// least recently written without tombstones (the changelog is not written
// while restoring).
func (s *Store) Restore(tp TP, key string, data []byte, dec Decoder, now time.Time) error {
	if s.inBatch {
		return ErrInBatch
	}
	if data == nil {
		if e := s.parts[tp][key]; e != nil {
			s.remove(e)
		}
		return nil
	}
	updated, raw, err := decodeEnvelope(data)
	if err != nil {
		return fmt.Errorf("state %s: %w", key, err)
	}
	if s.maxAge > 0 && updated < now.Add(-s.maxAge).UnixMilli() {
		if e := s.parts[tp][key]; e != nil {
			s.remove(e)
		}
		s.stats.RestoreSkipped++
		return nil
	}
	v, err := dec(key, raw)
	if err != nil {
		return fmt.Errorf("state %s: %w", key, err)
	}
	m := s.parts[tp]
	if m == nil {
		m = map[string]*entry{}
		s.parts[tp] = m
	}
	e := m[key]
	if e == nil {
		e = &entry{key: key, tp: tp}
		m[key] = e
		s.n++
		s.pushFront(e)
	} else {
		s.moveFront(e)
	}
	e.value, e.updated, e.touched = v, updated, updated
	s.stats.Restored++
	for s.maxKeys > 0 && s.n > s.maxKeys && s.tail != nil {
		s.remove(s.tail)
		s.stats.EvictedCount++
	}
	return nil
}

// Len returns the number of entries.
func (s *Store) Len() int { return s.n }

// Stats returns the counters.
func (s *Store) Stats() Stats {
	st := s.stats
	st.Keys = s.n
	return st
}

func (s *Store) saveUndo(tp TP, key string, e *entry) {
	if !s.inBatch || s.undone[key] {
		return
	}
	s.undone[key] = true
	u := undo{tp: tp, key: key}
	if e != nil {
		u.existed, u.value, u.updated = true, e.value, e.updated
	}
	s.undo = append(s.undo, u)
}

func (s *Store) remove(e *entry) {
	m := s.parts[e.tp]
	delete(m, e.key)
	if len(m) == 0 {
		delete(s.parts, e.tp)
	}
	s.unlink(e)
	s.n--
}

func (s *Store) pushFront(e *entry) {
	e.prev, e.next = nil, s.head
	if s.head != nil {
		s.head.prev = e
	}
	s.head = e
	if s.tail == nil {
		s.tail = e
	}
}

func (s *Store) unlink(e *entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else if s.head == e {
		s.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else if s.tail == e {
		s.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (s *Store) moveFront(e *entry) {
	if s.head == e {
		return
	}
	s.unlink(e)
	s.pushFront(e)
}

// envelope is the changelog value: when the value was written and the
// value itself, both readable with any JSON tool.
type envelope struct {
	Updated int64           `json:"u"`
	Value   json.RawMessage `json:"v"`
}

func encode(updated int64, v Value) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return json.Marshal(envelope{Updated: updated, Value: b})
}

func decodeEnvelope(data []byte) (int64, []byte, error) {
	var e envelope
	if err := json.Unmarshal(data, &e); err != nil {
		return 0, nil, err
	}
	return e.Updated, e.Value, nil
}
