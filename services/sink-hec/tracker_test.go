package sinkhec

import "testing"

func TestTrackerContiguousWatermark(t *testing.T) {
	tr := newTracker()
	tp := TP{"sluice.enriched.edx", 2}
	type rec struct {
		p   *partTrack
		seq uint64
	}
	var recs []rec
	for off := int64(100); off < 110; off++ {
		p, seq := tr.add(tp, off, 10)
		recs = append(recs, rec{p, seq})
	}
	if wm := tr.watermarks(nil); wm[tp] != 100 {
		t.Fatalf("nothing delivered: watermark %v, want 100", wm)
	}
	// Deliver out of order: 102..105 first, then 100: the watermark stops
	// at the first pending record (101).
	for _, i := range []int{2, 3, 4, 5, 0} {
		tr.done(recs[i].p, recs[i].seq)
	}
	if wm := tr.watermarks(nil); wm[tp] != 101 {
		t.Fatalf("watermark %v, want 101 (101 pending)", wm)
	}
	if tr.events != 9 || tr.bytes != 90 {
		t.Errorf("pending %d events %d bytes, want 9 and 90", tr.events, tr.bytes)
	}
	tr.done(recs[1].p, recs[1].seq)
	if wm := tr.watermarks(nil); wm[tp] != 106 {
		t.Fatalf("watermark %v, want 106", wm)
	}
	tr.done(recs[1].p, recs[1].seq) // twice: no effect
	tr.committed(map[TP]int64{tp: 106})
	if wm := tr.watermarks(nil); len(wm) != 0 {
		t.Errorf("committed watermark offered again: %v", wm)
	}
	for _, r := range recs[6:] {
		tr.done(r.p, r.seq)
	}
	if wm := tr.watermarks(map[string][]int32{tp.Topic: {2}}); wm[tp] != 110 {
		t.Errorf("watermark %v, want 110", wm)
	}
	if tr.events != 0 || tr.bytes != 0 || tr.pending(tp) != 0 {
		t.Errorf("pending %d/%d/%d after all delivered", tr.events, tr.bytes, tr.pending(tp))
	}
	// New records after a gap (a transaction marker) continue.
	p, seq := tr.add(tp, 112, 1)
	tr.done(p, seq)
	if wm := tr.watermarks(nil); wm[tp] != 113 {
		t.Errorf("watermark %v, want 113", wm)
	}
}

func TestTrackerDrop(t *testing.T) {
	tr := newTracker()
	tp := TP{"t", 0}
	p, s0 := tr.add(tp, 0, 5)
	_, s1 := tr.add(tp, 1, 5)
	tr.done(p, s1)
	tr.drop(map[string][]int32{"t": {0}})
	if tr.events != 0 || tr.bytes != 0 {
		t.Errorf("dropped partition still counted: %d events %d bytes", tr.events, tr.bytes)
	}
	tr.done(p, s0) // late delivery of a dropped partition
	if wm := tr.watermarks(nil); len(wm) != 0 {
		t.Errorf("dropped partition offered for commit: %v", wm)
	}
	// Reassigned later: a fresh start.
	p2, s := tr.add(tp, 50, 1)
	if p2 == p {
		t.Fatal("reassigned partition reuses the dropped tracker")
	}
	tr.done(p2, s)
	if wm := tr.watermarks(nil); wm[tp] != 51 {
		t.Errorf("watermark %v, want 51", wm)
	}
}

func TestTrackerCompacts(t *testing.T) {
	tr := newTracker()
	tp := TP{"t", 1}
	p, first := tr.add(tp, 0, 1)
	var last uint64
	for off := int64(1); off < 20000; off++ {
		_, s := tr.add(tp, off, 1)
		tr.done(p, s)
		last = s
	}
	if tr.pending(tp) != 20000 {
		t.Fatalf("pending %d", tr.pending(tp))
	}
	tr.done(p, first)
	if wm := tr.watermarks(nil); wm[tp] != 20000 || tr.pending(tp) != 0 || len(p.slots) != 0 {
		t.Errorf("watermark %v pending %d slots %d", wm, tr.pending(tp), len(p.slots))
	}
	_ = last
}
