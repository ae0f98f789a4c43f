package server

import (
	"context"
	"net/http"

	"go.uber.org/zap"

	"github.com/authd/authd/authd/internal/audit"
)

// record writes an audit event: one Info line in the log (the full trail)
// and an entry in the audit log the admin console reads. It fills Time and,
// from r when it is not nil, the client address and Source "web". A failing
// audit store is logged, never fatal to the action it describes.
func (s *Server) record(ctx context.Context, r *http.Request, e audit.Event) {
	if e.Time.IsZero() {
		e.Time = s.now()
	}
	if r != nil {
		if e.IP == "" {
			e.IP = addrField(s.cur.Load().clientIP(r))
		}
		if e.Source == "" {
			e.Source = "web"
		}
	}
	s.log.Info("audit", zap.String("event", e.Event), zap.String("actor", capped(e.Actor)),
		zap.String("target", capped(e.Target)), zap.String("client_ip", e.IP),
		zap.String("source", e.Source), zap.String("detail", capped(e.Detail)))
	if err := s.audit.Record(ctx, e); err != nil {
		s.log.Warn("audit record failed", zap.String("event", e.Event), zap.Error(err))
	}
}

// Audit returns the server's audit log, for the admin console and package main.
func (s *Server) Audit() audit.Log { return s.audit }
