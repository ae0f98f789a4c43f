//go:build !linux

package hasher

import "os/exec"

// Nice is the scheduling niceness of the hashing child; only Linux sets it.
const Nice = 0

func startLowPriority(cmd *exec.Cmd) error { return cmd.Start() }
