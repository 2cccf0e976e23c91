//go:build !race

package avro

// raceEnabled: see race_on_test.go.
const raceEnabled = false
