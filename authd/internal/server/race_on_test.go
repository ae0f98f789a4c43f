//go:build race

package server

// raceDetector is true under -race, which slows the code several times:
// timing assertions are off then.
const raceDetector = true
