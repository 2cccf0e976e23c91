package sinkhec

import (
	"strconv"
	"sync"
)

// TP names a source partition.
type TP struct {
	Topic     string
	Partition int32
}

func (tp TP) String() string { return tp.Topic + "/" + strconv.Itoa(int(tp.Partition)) }

// tracker follows every consumed record until it is delivered (its batch
// acknowledged, or it went to the dead-letter topic) and gives, per
// partition, the offset to commit: the one after the highest offset below
// which every record is delivered. Batches complete in any order; the
// commit never passes a record still pending (as
// KafkaRecordTracker.computeOffsets does in Splunk Connect for Kafka).
// Its methods need mu held.
type tracker struct {
	mu     sync.Mutex
	parts  map[TP]*partTrack
	events int // pending (consumed, not delivered) records
	bytes  int // and their rendered size
}

type partTrack struct {
	tp        TP
	slots     []slot // pending records in offset order from head
	head      int
	base      uint64 // seq of slots[0]
	next      int64  // offset after the contiguous delivered prefix; -1 none yet
	committed int64  // -1: nothing committed by this owner
	dropped   bool   // revoked or lost: never committed again
}

type slot struct {
	offset int64
	size   int32
	done   bool
}

func newTracker() *tracker { return &tracker{parts: map[TP]*partTrack{}} }

// add records a consumed record and returns its partition and sequence
// number. Records of a partition must be added in offset order.
func (t *tracker) add(tp TP, offset int64, size int) (*partTrack, uint64) {
	p := t.parts[tp]
	if p == nil {
		p = &partTrack{tp: tp, next: -1, committed: -1}
		t.parts[tp] = p
	}
	if len(p.slots) == p.head && p.next < 0 {
		p.next = offset // nothing pending: the partition stands at this record
	}
	p.slots = append(p.slots, slot{offset: offset, size: int32(size)})
	t.events++
	t.bytes += size
	return p, p.base + uint64(len(p.slots)-1)
}

// done marks a record delivered and moves its partition's watermark over
// the delivered prefix. It does nothing for a dropped partition.
func (t *tracker) done(p *partTrack, seq uint64) {
	if p.dropped {
		return
	}
	i := int(seq - p.base)
	if i < p.head || i >= len(p.slots) || p.slots[i].done {
		return
	}
	p.slots[i].done = true
	for p.head < len(p.slots) && p.slots[p.head].done {
		s := p.slots[p.head]
		p.next = s.offset + 1
		t.events--
		t.bytes -= int(s.size)
		p.head++
	}
	if p.head == len(p.slots) {
		p.base += uint64(len(p.slots))
		p.slots, p.head = p.slots[:0], 0
	} else if p.head > 4096 && p.head > len(p.slots)/2 {
		n := copy(p.slots, p.slots[p.head:])
		p.base += uint64(p.head)
		p.slots, p.head = p.slots[:n], 0
	}
}

// pending reports how many records of tp are not delivered.
func (t *tracker) pending(tp TP) int {
	if p := t.parts[tp]; p != nil {
		return len(p.slots) - p.head
	}
	return 0
}

// watermarks returns the offsets to commit for partitions (all when only
// is nil) whose watermark moved past their last commit.
func (t *tracker) watermarks(only map[string][]int32) map[TP]int64 {
	out := map[TP]int64{}
	add := func(p *partTrack) {
		if !p.dropped && p.next >= 0 && p.next > p.committed {
			out[p.tp] = p.next
		}
	}
	if only == nil {
		for _, p := range t.parts {
			add(p)
		}
		return out
	}
	for topic, ps := range only {
		for _, part := range ps {
			if p := t.parts[TP{topic, part}]; p != nil {
				add(p)
			}
		}
	}
	return out
}

// committed notes a successful commit.
func (t *tracker) committed(offsets map[TP]int64) {
	for tp, o := range offsets {
		if p := t.parts[tp]; p != nil && o > p.committed {
			p.committed = o
		}
	}
}

// drop forgets partitions: their pending records no longer count, and
// nothing of them is committed again. Events of theirs still in flight
// finish harmlessly.
func (t *tracker) drop(m map[string][]int32) {
	for topic, ps := range m {
		for _, part := range ps {
			tp := TP{topic, part}
			p := t.parts[tp]
			if p == nil {
				continue
			}
			for _, s := range p.slots[p.head:] { // counted until the prefix passes them
				t.events--
				t.bytes -= int(s.size)
			}
			p.dropped = true
			delete(t.parts, tp)
		}
	}
}
