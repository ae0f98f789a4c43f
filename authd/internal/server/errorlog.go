package server

import (
	"sync"
	"time"

	"go.uber.org/zap"
)

// errorLog logs a recurring error at most once a second, with how many were
// left out since the last line: during a store outage every verify fails,
// and one line per request would bury the log.
type errorLog struct {
	msg        string // the log message; "" means "session lookup failed"
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func (e *errorLog) log(l *zap.Logger, now time.Time, err error) {
	e.mu.Lock()
	if now.Sub(e.last) < time.Second {
		e.suppressed++
		e.mu.Unlock()
		return
	}
	n := e.suppressed
	e.last, e.suppressed = now, 0
	e.mu.Unlock()
	msg := e.msg
	if msg == "" {
		msg = "session lookup failed"
	}
	l.Error(msg, zap.Error(err), zap.Int("suppressed", n))
}
