//go:build race

package store

// The race detector slows argon2id several times over, so timing the KDF
// under it measures the detector, not the parameters.
const raceEnabled = true
