package redistest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
)

// OpenDeclared is Open with a client whose Lua scripts may touch only the
// keys they declare in KEYS, as Redis Cluster requires: before each EVAL or
// EVALSHA it narrows an ACL user to exactly those keys and runs the script
// as that user, so a script that reaches any other key (a name built in
// Lua) fails with NOPERM. Everything else runs unrestricted. Scripts of one
// client run one at a time.
func (s *Server) OpenDeclared(tb testing.TB) (redis.UniversalClient, string) {
	tb.Helper()
	c, prefix := s.Open(tb)
	n := s.prefixes.Add(1)
	user := "declared-" + strconv.FormatInt(n, 10)
	admin := redis.NewClient(&redis.Options{Addr: s.addr, Protocol: 2, DisableIdentity: true})
	probe := redis.NewClient(&redis.Options{Addr: s.addr, Protocol: 2, DisableIdentity: true, Username: user, Password: "x"})
	h := &declaredHook{admin: admin, probe: probe, user: user}
	if err := h.restrict(context.Background(), nil); err != nil {
		tb.Fatalf("redis ACL: %v", err)
	}
	tb.Cleanup(func() {
		probe.Close()
		_ = admin.Do(context.Background(), "ACL", "DELUSER", user).Err()
		admin.Close()
	})
	c.AddHook(h)
	return c, prefix
}

type declaredHook struct {
	admin, probe *redis.Client
	user         string
	mu           sync.Mutex
}

func (h *declaredHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *declaredHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			if isScript(c) {
				return fmt.Errorf("redistest: a script in a pipeline is not checked for undeclared keys")
			}
		}
		return next(ctx, cmds)
	}
}

func (h *declaredHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !isScript(cmd) {
			return next(ctx, cmd)
		}
		args := cmd.Args()
		n, err := strconv.Atoi(fmt.Sprint(args[2]))
		if err != nil || 3+n > len(args) {
			return fmt.Errorf("redistest: %s without a key count", cmd.Name())
		}
		keys := make([]string, n)
		for i := range n {
			keys[i] = fmt.Sprint(args[3+i])
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if err := h.restrict(ctx, keys); err != nil {
			return err
		}
		return h.probe.Process(ctx, cmd)
	}
}

// restrict lets the ACL user run any command and publish anywhere, on keys
// only.
func (h *declaredHook) restrict(ctx context.Context, keys []string) error {
	args := []any{"ACL", "SETUSER", h.user, "reset", "on", "nopass", "&*", "+@all"}
	for _, k := range keys {
		args = append(args, "~"+globEscape(k))
	}
	if err := h.admin.Do(ctx, args...).Err(); err != nil {
		return fmt.Errorf("redistest: ACL SETUSER: %w", err)
	}
	return nil
}

func isScript(c redis.Cmder) bool {
	n := strings.ToLower(c.Name())
	return n == "eval" || n == "evalsha" || n == "eval_ro" || n == "evalsha_ro"
}

// globEscape quotes the characters ACL key patterns treat as glob syntax.
func globEscape(k string) string {
	var b strings.Builder
	for _, r := range k {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
