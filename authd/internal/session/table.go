package session

import "encoding/binary"

// table is one shard's index: open addressing with linear probing over 4-byte
// slots that point into densely packed records, which carry their own keys.
// A Go map[Key]record costs a ~130-byte slot per session, and right after its
// tables split (as they do in step at a million sessions over 256 shards) it
// is half empty; this costs 4-11 bytes of slots per session. Keys are SHA-256
// output, so their bytes serve as the hash.
type table struct {
	slots  []uint32   // 0: empty; i+1: record i; len is a power of two
	chunks [][]record // chunkSize records each, so growth never copies them all
	n      int
}

const (
	chunkBits = 8
	chunkSize = 1 << chunkBits
	minSlots  = 8
)

// hashOf returns the probe hash of k. Byte 0 picks the shard; bytes 8-15 are
// independent of it.
func hashOf(k *Key) uint64 { return binary.LittleEndian.Uint64(k[8:16]) }

func (t *table) rec(i int) *record { return &t.chunks[i>>chunkBits][i&(chunkSize-1)] }

// find returns the slot holding k, or -1.
func (t *table) find(k *Key) int {
	if t.n == 0 {
		return -1
	}
	mask := len(t.slots) - 1
	for s := int(hashOf(k)) & mask; ; s = (s + 1) & mask {
		v := t.slots[s]
		if v == 0 {
			return -1
		}
		if t.rec(int(v-1)).key == *k {
			return s
		}
	}
}

// get returns the record for k, or nil. The pointer is valid until the next
// change to the table.
func (t *table) get(k *Key) *record {
	s := t.find(k)
	if s < 0 {
		return nil
	}
	return t.rec(int(t.slots[s] - 1))
}

// put stores r under r.key and reports whether the key was new.
func (t *table) put(r record) bool {
	if s := t.find(&r.key); s >= 0 {
		*t.rec(int(t.slots[s] - 1)) = r
		return false
	}
	if (t.n+1)*4 > len(t.slots)*3 {
		t.resize(max(minSlots, 2*len(t.slots)))
	}
	c := t.n >> chunkBits
	if c == len(t.chunks) {
		t.chunks = append(t.chunks, nil)
	}
	if ch := t.chunks[c]; len(ch) == cap(ch) {
		// Grow by hand: append would round a chunk past chunkSize and
		// waste a third of it.
		grown := make([]record, len(ch), min(max(2*cap(ch), 8), chunkSize))
		copy(grown, ch)
		t.chunks[c] = grown
	}
	t.chunks[c] = append(t.chunks[c], r)
	t.place(t.n)
	t.n++
	return true
}

// place puts record i in the first free slot from its home.
func (t *table) place(i int) {
	mask := len(t.slots) - 1
	s := int(hashOf(&t.rec(i).key)) & mask
	for t.slots[s] != 0 {
		s = (s + 1) & mask
	}
	t.slots[s] = uint32(i + 1)
}

// resize rebuilds the slots with size entries.
func (t *table) resize(size int) {
	t.slots = make([]uint32, size)
	for i := range t.n {
		t.place(i)
	}
}

// del removes k and reports whether it was there.
func (t *table) del(k *Key) bool {
	s := t.find(k)
	if s < 0 {
		return false
	}
	i := int(t.slots[s] - 1)
	t.clearSlot(s)
	// Keep records dense: the last one moves into the hole.
	last := t.n - 1
	if i != last {
		moved := t.rec(last)
		*t.rec(i) = *moved
		t.slots[t.find(&moved.key)] = uint32(i + 1)
	}
	c := last >> chunkBits
	t.chunks[c][last&(chunkSize-1)] = record{} // let the GC have its strings
	t.chunks[c] = t.chunks[c][:last&(chunkSize-1)]
	if len(t.chunks[c]) == 0 {
		t.chunks[c] = nil
		t.chunks = t.chunks[:c]
	}
	t.n--
	if len(t.slots) > minSlots && t.n*8 < len(t.slots) {
		t.resize(len(t.slots) / 2) // give memory back after mass deletes
	}
	return true
}

// clearSlot empties slot s and shifts later members of its probe run back,
// so lookups never need tombstones.
func (t *table) clearSlot(s int) {
	mask := len(t.slots) - 1
	hole := s
	for j := (s + 1) & mask; t.slots[j] != 0; j = (j + 1) & mask {
		home := int(hashOf(&t.rec(int(t.slots[j]-1)).key)) & mask
		// The entry at j may fill the hole unless its home lies cyclically
		// in (hole, j].
		if (j-home)&mask >= (j-hole)&mask {
			t.slots[hole] = t.slots[j]
			hole = j
		}
	}
	t.slots[hole] = 0
}

// deleteIf removes every record for which drop is true and returns how many.
func (t *table) deleteIf(drop func(*record) bool) int {
	n := 0
	// Downwards: del moves the last record into the hole, and that one has
	// been looked at already.
	for i := t.n - 1; i >= 0; i-- {
		if r := t.rec(i); drop(r) {
			k := r.key
			t.del(&k)
			n++
		}
	}
	return n
}

// reset drops everything and the memory with it.
func (t *table) reset() { *t = table{} }
