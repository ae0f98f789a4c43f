package main

import (
	"bufio"
	"bytes"
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
	raw := fs.Bool("raw", false, "answer without net/http (see serveRaw)")
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
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if *raw {
		return serveRaw(ctx, ln, want)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 120 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		return fmt.Errorf("floor: %w", err)
	}
	return nil
}

// serveRaw is the floor without net/http: a minimal HTTP/1.1 keep-alive loop
// that reads the request head, compares the Cookie header and writes a canned
// answer. It is not a server anyone should run (no limits, no bodies, no
// pipelining); it only shows how much of the floor is net/http's own cost.
func serveRaw(ctx context.Context, ln net.Listener, cookie string) error {
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	ok := []byte("HTTP/1.1 200 OK\r\nRemote-User: " + benchUser + "\r\nContent-Length: 0\r\n\r\n")
	deny := []byte("HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
	want := []byte(cookie)
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go func() {
			defer c.Close()
			r := bufio.NewReaderSize(c, 8<<10)
			for {
				pass, err := readHead(r, want)
				if err != nil {
					return
				}
				ans := deny
				if pass {
					ans = ok
				}
				if _, err := c.Write(ans); err != nil {
					return
				}
			}
		}()
	}
}

// readHead reads one request head and reports whether its Cookie header
// equals want.
func readHead(r *bufio.Reader, want []byte) (bool, error) {
	pass := false
	for first := true; ; first = false {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return false, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			if first {
				continue
			}
			return pass, nil
		}
		if k, v, found := bytes.Cut(line, []byte(":")); found && bytes.EqualFold(k, []byte("Cookie")) {
			pass = bytes.Equal(bytes.TrimSpace(v), want)
		}
	}
}
