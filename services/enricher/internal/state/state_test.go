package state

import (
	"encoding/json"
	"sort"
	"testing"
	"time"
)

type val struct {
	S string `json:"s"`
}

func dec(_ string, b []byte) (Value, error) {
	v := &val{}
	return v, json.Unmarshal(b, v)
}

var (
	t0  = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tpA = TP{Family: "clicks", Partition: 0}
	tpB = TP{Family: "clicks", Partition: 1}
)

func get(s *Store, tp TP, key string) string {
	v, ok := s.Get(tp, key, t0)
	if !ok {
		return "<none>"
	}
	return v.(*val).S
}

func TestKeyEscapesThePartitionKey(t *testing.T) {
	if a, b := Key("f", "a/b", "c"), Key("f", "a", "b/c"); a == b {
		t.Fatalf("keys collide: %s", a)
	}
	if FamilyOf(Key("weaklayer", "s/1", "w/5")) != "weaklayer" {
		t.Error("FamilyOf")
	}
}

func TestCommitAndChanges(t *testing.T) {
	s := New(100, time.Hour)
	s.Begin()
	s.Put(tpA, "k1", &val{"a"}, t0)
	s.Put(tpA, "k1", &val{"b"}, t0) // last value wins
	s.Put(tpB, "k2", &val{"c"}, t0)
	s.Put(tpB, "k3", &val{"d"}, t0)
	s.Delete(tpB, "k3")
	ch, err := s.Changes()
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(ch, func(i, j int) bool { return ch[i].Key < ch[j].Key })
	if len(ch) != 3 || ch[0].Key != "k1" || ch[0].Partition != 0 || ch[1].Key != "k2" || ch[1].Partition != 1 ||
		ch[2].Key != "k3" || ch[2].Value != nil {
		t.Fatalf("changes = %+v", ch)
	}
	var env envelope
	if err := json.Unmarshal(ch[0].Value, &env); err != nil || env.Updated != t0.UnixMilli() || string(env.Value) != `{"s":"b"}` {
		t.Fatalf("changelog value %s: %v", ch[0].Value, err)
	}
	s.Commit()
	if get(s, tpA, "k1") != "b" || get(s, tpB, "k2") != "c" || get(s, tpB, "k3") != "<none>" || s.Len() != 2 {
		t.Fatal("committed state wrong")
	}
	s.Begin()
	if ch, _ := s.Changes(); len(ch) != 0 {
		t.Fatalf("a new batch starts with changes %v", ch)
	}
	s.Commit()
}

func TestRollbackUndoesEverything(t *testing.T) {
	s := New(100, time.Hour)
	s.Begin()
	s.Put(tpA, "keep", &val{"v1"}, t0)
	s.Put(tpA, "gone", &val{"x"}, t0)
	s.Commit()

	s.Begin()
	s.Put(tpA, "keep", &val{"v2"}, t0)
	s.Put(tpA, "keep", &val{"v3"}, t0)
	s.Delete(tpA, "gone")
	s.Put(tpB, "new", &val{"n"}, t0)
	s.Rollback()
	if get(s, tpA, "keep") != "v1" || get(s, tpA, "gone") != "x" || get(s, tpB, "new") != "<none>" || s.Len() != 2 {
		t.Fatalf("rollback left keep=%s gone=%s new=%s len=%d", get(s, tpA, "keep"), get(s, tpA, "gone"), get(s, tpB, "new"), s.Len())
	}
	s.Begin()
	if ch, _ := s.Changes(); len(ch) != 0 {
		t.Fatalf("changes after rollback: %v", ch)
	}
	s.Commit()
}

func TestEvictByAgeAndCount(t *testing.T) {
	s := New(3, time.Hour)
	s.Begin()
	s.Put(tpA, "old", &val{"o"}, t0)
	s.Put(tpA, "a", &val{"a"}, t0.Add(50*time.Minute))
	s.Put(tpA, "b", &val{"b"}, t0.Add(55*time.Minute))
	s.Commit()
	// A read keeps an entry young.
	s.Get(tpA, "a", t0.Add(70*time.Minute))

	s.Begin()
	now := t0.Add(90 * time.Minute)
	s.Put(tpB, "c", &val{"c"}, now)
	s.Put(tpB, "d", &val{"d"}, now)
	s.Evict(now) // old: 90 min unused → age; then 4 > 3 → LRU (b)
	ch, _ := s.Changes()
	s.Commit()
	if s.Len() != 3 {
		t.Fatalf("len %d, want 3", s.Len())
	}
	for _, k := range []string{"old", "b"} {
		if _, ok := s.Get(tpA, k, now); ok {
			t.Errorf("%s not evicted", k)
		}
	}
	tombs := 0
	for _, c := range ch {
		if c.Value == nil {
			tombs++
		}
	}
	if tombs != 2 {
		t.Errorf("%d tombstones, want 2 (evictions are changes)", tombs)
	}
	st := s.Stats()
	if st.EvictedAge != 1 || st.EvictedCount != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestDropIsNotAChange(t *testing.T) {
	s := New(100, time.Hour)
	s.Begin()
	s.Put(tpA, "a", &val{"a"}, t0)
	s.Put(tpB, "b", &val{"b"}, t0)
	if err := s.Drop(tpA); err != ErrInBatch {
		t.Fatalf("Drop inside a batch: %v", err)
	}
	s.Commit()
	if err := s.Drop(tpA); err != nil {
		t.Fatal(err)
	}
	if s.Has(tpA) || !s.Has(tpB) || s.Len() != 1 {
		t.Fatal("drop removed the wrong partition")
	}
}

func TestRestore(t *testing.T) {
	src := New(100, time.Hour)
	src.Begin()
	src.Put(tpA, "a", &val{"a"}, t0)
	src.Put(tpA, "b", &val{"b"}, t0)
	src.Put(tpA, "old", &val{"o"}, t0.Add(-2*time.Hour))
	ch, _ := src.Changes()
	src.Commit()

	dst := New(100, time.Hour)
	now := t0.Add(time.Minute)
	for _, c := range ch {
		if err := dst.Restore(tpA, c.Key, c.Value, dec, now); err != nil {
			t.Fatal(err)
		}
	}
	if err := dst.Restore(tpA, "b", nil, dec, now); err != nil { // a later tombstone
		t.Fatal(err)
	}
	if get(dst, tpA, "a") != "a" || get(dst, tpA, "b") != "<none>" || get(dst, tpA, "old") != "<none>" {
		t.Fatal("restored state wrong")
	}
	if st := dst.Stats(); st.Restored != 2 || st.RestoreSkipped != 1 {
		t.Errorf("stats %+v", st)
	}
	if err := dst.Restore(tpA, "bad", []byte("{"), dec, now); err == nil {
		t.Error("corrupt value restored")
	}
}
