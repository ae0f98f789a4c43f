package main

import (
	"context"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/authd/authd/authd/internal/config"
	"github.com/authd/authd/authd/internal/policy"
)

// reloadReport says what a reload applied and what it could not.
type reloadReport struct {
	Users int // users loaded after the reload
	// Applied lists the config keys whose new values the reload applied,
	// against the last config applied.
	Applied []string
	// Restart lists the config keys that differ from the config authd
	// started with and apply only after a restart; the running values stay.
	// They are listed on every reload until then.
	Restart []string
	// Warnings are config.Warnings for the new config and users: a rule
	// naming a group nobody holds, and the like. None of them refuses.
	Warnings []string
}

// Reload re-reads what may change while authd runs — users, machine
// credentials, config and rules — in three steps: load and validate
// everything (a failure keeps the last good copy and is returned), apply
// every live setting (applyConfig), then report. It runs on SIGHUP and on
// the admin socket's /reload, one at a time; the stores and the Redis
// client stay as Open made them.
func (m *Main) Reload(ctx context.Context) (reloadReport, error) {
	m.reloadMu.Lock()
	defer m.reloadMu.Unlock()
	ok := false // counted in /metrics whichever way it ends
	defer func() {
		if m.srv != nil {
			m.srv.ReloadDone(ok)
		}
	}()
	st := m.stores

	// Load and validate. The config comes first: its [hash] sets the bounds
	// the users are checked against (userLimits). The users and credentials
	// stores swap in a new copy only when it loads, and keep the old one
	// (and the users their old bounds) otherwise.
	next, cfgErr := loadConfig(m.cfgPath)
	var rules *policy.Rules
	if cfgErr == nil {
		rules, cfgErr = policyRules(next)
	}
	lim := userLimits(m.applied)
	if cfgErr == nil {
		lim = userLimits(next)
	}
	if _, err := st.users.ReloadWithin(lim); err != nil {
		m.log.Error("reload failed, keeping the last good users", zap.String("event", "reload_failed"), zap.Error(err))
		return reloadReport{}, err
	}
	if _, err := st.credentials.reload(ctx); err != nil {
		m.log.Error("reload failed, keeping the last good machine credentials", zap.String("event", "reload_failed"), zap.Error(err))
		m.restoreLimits()
		return reloadReport{}, err
	}
	// Apply.
	var rep reloadReport
	err := cfgErr
	if err == nil {
		rep, err = m.applyConfig(next, rules)
	}
	if err != nil {
		m.log.Error("reload failed, keeping the last good config", zap.String("event", "reload_failed"), zap.Error(err))
		m.restoreLimits()
		return reloadReport{}, err
	}

	// Report.
	rep.Users = st.users.DB().Len()
	m.log.Info("reloaded", zap.String("event", "reload"), zap.Int("users", rep.Users))
	ok = true
	return rep, nil
}

// applyConfig makes next the running config as far as that can be done
// without a restart — server options, rules, throttle limits, log level —
// and logs what it did: one Warn line per setting that still differs from
// what authd started with and needs a restart (on every reload until then),
// one Warn line per config warning, one Info line listing the settings
// applied. next must be validated; on error nothing has changed.
func (m *Main) applyConfig(next config.Config, rules *policy.Rules) (reloadReport, error) {
	var lvl zapcore.Level
	if err := lvl.UnmarshalText([]byte(next.Log.Level)); err != nil {
		return reloadReport{}, err
	}
	// SetOptions first: it is the one step that can refuse next.
	if err := m.srv.SetOptions(serverOptions(next, m.stores.secret, m.build)); err != nil {
		return reloadReport{}, err
	}
	m.srv.SetRules(rules)
	m.stores.throttle.SetConfig(throttleConfig(next))
	m.level.SetLevel(lvl)

	var rep reloadReport
	rep.Applied, _ = config.Diff(m.applied, next)
	_, rep.Restart = config.Diff(m.cfg, next)
	rep.Warnings = config.Warnings(next, m.stores.users.DB())
	m.applied = next
	for _, k := range rep.Restart {
		m.log.Warn("setting changed but needs a restart", zap.String("event", "reload"), zap.String("key", k))
	}
	m.logWarnings(rep.Warnings)
	m.log.Info("config reloaded", zap.String("event", "reload"), zap.Strings("applied", rep.Applied), zap.Strings("needs_restart", rep.Restart))
	return rep, nil
}

// restoreLimits puts the users back under the bounds of the config still
// running, after a reload that checked them against a config it then failed
// to apply.
func (m *Main) restoreLimits() {
	if _, err := m.stores.users.ReloadWithin(userLimits(m.applied)); err != nil {
		m.log.Error("users no longer load under the running [hash] bounds, keeping the last good copy",
			zap.String("event", "reload_failed"), zap.Error(err))
	}
}

func (m *Main) logWarnings(warnings []string) {
	for _, w := range warnings {
		m.log.Warn("config warning", zap.String("event", "config_warning"), zap.String("warning", w))
	}
}
