package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// runFloor is `bench floor`: the do-nothing Go auth backend of PERF.md. It
// compares the whole Cookie header with one string and answers 200 with a
// user header, else 401: the least work any Go net/http auth backend does,
// so it is the floor authd is measured against.
func runFloor(args []string) error {
	fs := flag.NewFlagSet("floor", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:9092", "address")
	cookie := fs.String("cookie", "", "the one Cookie header value that passes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	want := *cookie
	user := []string{benchUser}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Cookie") == want {
			w.Header()["Remote-User"] = user
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusUnauthorized)
	})
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 120 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		return fmt.Errorf("floor: %w", err)
	}
	return nil
}
