// Package hasher runs password hashes in a child process at the lowest CPU
// priority, so that a login flood cannot take the CPU from verify.
//
// Lowering the priority of threads inside authd itself does not work: the Go
// runtime does not know the kernel starves such a thread, so the thread keeps
// one of the runtime's Ps while it waits for the CPU, and every garbage
// collection stops the world until that thread has been scheduled to reach a
// safe point. In the flood benchmark on 2 cores that stretched verify's p99 to
// hundreds of milliseconds. A child process has its own runtime: while it
// waits for the CPU, only logins wait.
//
// The child is the same binary (a hidden subcommand calls Serve); requests and
// answers travel as gob over its stdin and stdout. It ends when its stdin
// closes, so it never outlives authd. If it dies, the calls in flight fail
// with ErrUnavailable and the next call starts a new one.
package hasher

import (
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"

	"github.com/authd/authd/authd/internal/users"
)

// ErrUnavailable is a hash that could not be run because the child process
// could not be started or died; the caller should answer "busy", never
// "wrong password".
var ErrUnavailable = errors.New("hashing process unavailable")

type op uint8

const (
	opVerify op = iota + 1
	opDummy
	opHash
)

type request struct {
	ID       uint64
	Op       op
	Encoded  string
	Password string
	Params   users.Params
	Limits   users.Limits
}

type response struct {
	ID      uint64
	OK      bool
	Upgrade bool
	Hash    string
	Err     string
}

// Proc is the parent's side: it starts the child on first use and again
// after it died. Its methods are safe for concurrent use; how many hashes run
// at once is the caller's to bound (the server's hashing gate).
type Proc struct {
	path string
	args []string

	mu      sync.Mutex
	child   *child
	closed  bool
	started func(pid int) // test hook
}

type child struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	wmu     sync.Mutex // serialises encodes
	enc     *gob.Encoder
	mu      sync.Mutex // guards pending, next, err
	pending map[uint64]chan response
	next    uint64
	err     error // set once the child is gone
	done    chan struct{}
}

// New returns a Proc that runs path with args as the hashing child. Start
// it with Start to learn of a problem before serving.
func New(path string, args ...string) *Proc {
	return &Proc{path: path, args: args}
}

// Start starts the child if it is not running.
func (p *Proc) Start() error {
	_, err := p.get()
	return err
}

// Close ends the child (by closing its stdin) and waits for it.
func (p *Proc) Close() error {
	p.mu.Lock()
	c := p.child
	p.closed = true
	p.child = nil
	p.mu.Unlock()
	if c == nil {
		return nil
	}
	_ = c.stdin.Close()
	<-c.done
	return nil
}

// PID is the running child's process ID, 0 when none runs.
func (p *Proc) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.child == nil {
		return 0
	}
	return p.child.cmd.Process.Pid
}

func (p *Proc) get() (*child, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, fmt.Errorf("%w: closed", ErrUnavailable)
	}
	if p.child != nil {
		select {
		case <-p.child.done:
		default:
			return p.child, nil
		}
	}
	c, err := p.start()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	p.child = c
	if p.started != nil {
		p.started(c.cmd.Process.Pid)
	}
	return c, nil
}

func (p *Proc) start() (*child, error) {
	cmd := exec.Command(p.path, p.args...)
	cmd.Stderr = os.Stderr
	cmd.Env = append(os.Environ(), "GOGC=50") // its heap is mostly the hash's memory; give it back soon
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := startLowPriority(cmd); err != nil {
		return nil, fmt.Errorf("start %s: %w", p.path, err)
	}
	c := &child{cmd: cmd, stdin: stdin, enc: gob.NewEncoder(stdin), pending: map[uint64]chan response{}, done: make(chan struct{})}
	go c.read(stdout)
	return c, nil
}

// read delivers the child's answers until it ends, then fails what is left.
func (c *child) read(r io.Reader) {
	dec := gob.NewDecoder(r)
	var err error
	for {
		var res response
		if err = dec.Decode(&res); err != nil {
			break
		}
		c.mu.Lock()
		ch := c.pending[res.ID]
		delete(c.pending, res.ID)
		c.mu.Unlock()
		if ch != nil {
			ch <- res
		}
	}
	_ = c.stdin.Close()
	werr := c.cmd.Wait()
	c.mu.Lock()
	c.err = fmt.Errorf("%w: child ended: %v (%v)", ErrUnavailable, err, werr)
	// done closes before any waiter hears of the death, so a caller that
	// retries at once finds the child gone and starts a new one.
	close(c.done)
	for id, ch := range c.pending {
		delete(c.pending, id)
		close(ch)
	}
	c.mu.Unlock()
}

func (p *Proc) call(ctx context.Context, req request) (response, error) {
	c, err := p.get()
	if err != nil {
		return response{}, err
	}
	ch := make(chan response, 1)
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return response{}, c.err
	}
	c.next++
	req.ID = c.next
	c.pending[req.ID] = ch
	c.mu.Unlock()
	c.wmu.Lock()
	err = c.enc.Encode(&req)
	c.wmu.Unlock()
	if err != nil {
		c.mu.Lock()
		delete(c.pending, req.ID)
		c.mu.Unlock()
		_ = c.cmd.Process.Kill() // a half-written request leaves the stream unusable
		return response{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	select {
	case res, ok := <-ch:
		if !ok {
			c.mu.Lock()
			defer c.mu.Unlock()
			return response{}, c.err
		}
		return res, nil
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.pending, req.ID)
		c.mu.Unlock()
		return response{}, fmt.Errorf("%w: %v", ErrUnavailable, ctx.Err())
	}
}

// Verify is users.Verify run in the child. An error wrapping ErrUnavailable
// means the hash did not run; any other error is the stored hash's problem.
func (p *Proc) Verify(ctx context.Context, encoded, password string, params users.Params, lim users.Limits) (ok, upgrade bool, err error) {
	res, err := p.call(ctx, request{Op: opVerify, Encoded: encoded, Password: password, Params: params, Limits: lim})
	if err != nil {
		return false, false, err
	}
	if res.Err != "" {
		return false, false, errors.New(res.Err)
	}
	return res.OK, res.Upgrade, nil
}

// Dummy is users.Dummy run in the child.
func (p *Proc) Dummy(ctx context.Context, password string, params users.Params) error {
	_, err := p.call(ctx, request{Op: opDummy, Password: password, Params: params})
	return err
}

// Hash is users.Hash run in the child.
func (p *Proc) Hash(ctx context.Context, password string, params users.Params) (string, error) {
	res, err := p.call(ctx, request{Op: opHash, Password: password, Params: params})
	if err != nil {
		return "", err
	}
	if res.Err != "" {
		return "", errors.New(res.Err)
	}
	return res.Hash, nil
}

// Serve is the child's side: it answers requests from r on w, each as soon
// as its hash is done, until r ends.
func Serve(r io.Reader, w io.Writer) error {
	dec, enc := gob.NewDecoder(r), gob.NewEncoder(w)
	var mu sync.Mutex
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		var req request
		if err := dec.Decode(&req); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read request: %w", err)
		}
		wg.Go(func() {
			res := response{ID: req.ID}
			switch req.Op {
			case opVerify:
				var err error
				res.OK, res.Upgrade, err = users.Verify(req.Encoded, req.Password, req.Params, req.Limits)
				if err != nil {
					res.Err = err.Error()
				}
			case opDummy:
				users.Dummy(req.Password, req.Params)
			case opHash:
				h, err := users.Hash(req.Password, req.Params)
				res.Hash = h
				if err != nil {
					res.Err = err.Error()
				}
			default:
				res.Err = fmt.Sprintf("unknown operation %d", req.Op)
			}
			mu.Lock()
			defer mu.Unlock()
			if err := enc.Encode(&res); err != nil {
				// The parent is gone; the next Decode ends the loop.
				return
			}
		})
	}
}
