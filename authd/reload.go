package main

import (
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/authd/authd/authd/internal/config"
	"github.com/authd/authd/authd/internal/policy"
	"github.com/authd/authd/authd/internal/server"
	"github.com/authd/authd/authd/internal/throttle"
)

// live are the running pieces a reload reconfigures in place.
type live struct {
	srv    *server.Server
	thr    interface{ SetConfig(throttle.Config) }
	level  zap.AtomicLevel
	log    *zap.Logger
	secret []byte
	reload func() error
	build  server.BuildInfo

	// started is the config authd started with: what listen, data_dir,
	// store, redis.* … still are until a restart. applied is the last
	// config whose live settings were applied.
	started, applied config.Config
}

// applyConfig makes next the running config as far as that can be done
// without a restart, and logs what it did: one Info line listing the
// settings applied, one Warn line per setting that still differs from what
// authd started with and needs a restart (on every reload until then), one
// Warn line per config warning. next must be validated; on error nothing
// has changed.
func (l *live) applyConfig(next config.Config, rules *policy.Rules, warnings []string) error {
	var lvl zapcore.Level
	if err := lvl.UnmarshalText([]byte(next.Log.Level)); err != nil {
		return err
	}
	opts := serverOptions(next, l.secret, l.reload)
	opts.Build = l.build
	if err := l.srv.SetOptions(opts); err != nil {
		return err
	}
	l.srv.SetRules(rules)
	l.thr.SetConfig(throttleConfig(next))
	l.level.SetLevel(lvl)

	applied, _ := config.Diff(l.applied, next)
	_, restart := config.Diff(l.started, next)
	l.applied = next
	for _, k := range restart {
		l.log.Warn("setting changed but needs a restart", zap.String("event", "reload"), zap.String("key", k))
	}
	l.logWarnings(warnings)
	l.log.Info("config reloaded", zap.String("event", "reload"), zap.Strings("applied", applied), zap.Strings("needs_restart", restart))
	return nil
}

func (l *live) logWarnings(warnings []string) {
	for _, w := range warnings {
		l.log.Warn("config warning", zap.String("event", "config_warning"), zap.String("warning", w))
	}
}
