//go:build !linux

package server

// niced runs fn; only Linux lowers the priority of one thread.
func niced(fn func()) { fn() }
