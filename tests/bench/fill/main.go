//go:build authdbenchfill

// Command fill writes sessions into an embedded session store before authd
// starts, for the benchmark's many-sessions mode. It imports authd's internal
// session package, which Go allows only below authd/, so the benchmark builds
// it with an overlay that places this file at authd/internal/benchfill (see
// ../sessions.go); nothing is written into authd/. The build tag keeps it out
// of `go build ./...` and `go vet ./...`.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/authd/authd/authd/internal/session"
	"github.com/authd/authd/authd/internal/users"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "fill:", err)
		os.Exit(1)
	}
}

func run() error {
	dir := flag.String("dir", "", "data directory of the store")
	usersFile := flag.String("users", "", "users file (for the credential fingerprint)")
	name := flag.String("user", "bench", "user the sessions belong to")
	n := flag.Int("n", 1000, "sessions to create")
	keep := flag.Int("keep", 1000, "cookies to write to -cookies (the first ones created)")
	out := flag.String("cookies", "", "file for the cookies, one per line")
	workers := flag.Int("workers", 512, "concurrent Create calls (they share fsyncs)")
	flag.Parse()

	f, err := users.OpenFile(*usersFile, users.DefaultLimits())
	if err != nil {
		return err
	}
	u, ok := f.DB().Lookup(*name)
	if !ok {
		return fmt.Errorf("no user %q in %s", *name, *usersFile)
	}
	start := time.Now()
	store, err := session.OpenEmbedded(*dir, time.Now, session.WithMaxSessions(*n+session.DefaultMaxSessions))
	if err != nil {
		return err
	}
	cookies := make([]string, min(*keep, *n))
	var next atomic.Int64
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	ctx := context.Background()
	for range max(1, min(*workers, *n)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(*n) || firstErr.Load() != nil {
					return
				}
				cookie, key, err := session.New()
				if err == nil {
					now := time.Now()
					err = store.Create(ctx, key, session.Session{
						User: u.Name, Created: now, LastSeen: now, Expires: now.Add(12 * time.Hour),
						Idle: 30 * time.Minute, IP: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255),
						UserAgent: "authd-bench/1", Fingerprint: u.Fingerprint,
					})
				}
				if err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
				if i < int64(len(cookies)) {
					cookies[i] = cookie
				}
			}
		}()
	}
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		_ = store.Close()
		return *p
	}
	created := time.Since(start)
	if err := store.Close(); err != nil {
		return err
	}
	if *out != "" {
		if err := os.WriteFile(*out, []byte(strings.Join(cookies, "\n")+"\n"), 0o600); err != nil {
			return err
		}
	}
	fmt.Printf("created=%.3f total=%.3f sessions=%d\n", created.Seconds(), time.Since(start).Seconds(), *n)
	return nil
}
