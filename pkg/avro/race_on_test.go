//go:build race

package avro

// raceEnabled is set under the race detector, whose sync.Pool drops items
// at random, so that tests counting allocations skip what a pool serves.
const raceEnabled = true
