package server

import (
	"errors"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestErrorLogIsRateLimited(t *testing.T) {
	core, logs := observer.New(zap.ErrorLevel)
	l := zap.New(core)
	var e errorLog
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 1000; i++ {
		e.log(l, t0.Add(time.Duration(i)*time.Millisecond), errors.New("redis down"))
	}
	e.log(l, t0.Add(1500*time.Millisecond), errors.New("redis down"))
	entries := logs.All()
	if len(entries) != 2 {
		t.Fatalf("got %d lines, want 2", len(entries))
	}
	if got := entries[1].ContextMap()["suppressed"]; got != int64(999) {
		t.Errorf("suppressed = %v, want 999", got)
	}
}
