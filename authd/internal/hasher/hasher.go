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
// The lowest priority starves, though: with the cores busy for long (a
// Streamlit app computing, a build), a hash at SCHED_IDLE waits for seconds
// or more; on 2 cores with three busy loops a login took 14-24 s. So a hash
// still unanswered after Escalate also runs in a second child at authd's own
// priority, and the first answer wins: a login waits at most about Escalate
// longer than at normal priority, and a flood costs the cores at most one
// normal-priority hash per hashing slot per Escalate.
//
// The children are the same binary (a hidden subcommand calls Serve); requests
// and answers travel as gob over their stdin and stdout. Each ends when its
// stdin closes, so it never outlives authd. If one dies, the calls in flight
// on it fail with ErrUnavailable (unless the other child answers them) and the
// next call starts a new one.
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
	"sync/atomic"
	"time"

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

// Escalate is how long a hash may wait in the low-priority child before it
// also runs at authd's own priority.
const Escalate = time.Second

// Proc is the parent's side: it starts the children on first use and again
// after one died. Its methods are safe for concurrent use; how many hashes run
// at once is the caller's to bound (the server's hashing gate).
type Proc struct {
	path string
	args []string
	// escalate is Escalate, shorter in tests.
	escalate  time.Duration
	escalated atomic.Uint64

	mu sync.Mutex
	// low runs at the lowest priority; urgent, started on the first
	// escalation, at authd's own.
	low, urgent *child
	closed      bool
	started     func(pid int) // test hook, for the low child
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
	return &Proc{path: path, args: args, escalate: Escalate}
}

// Start starts the low-priority child if it is not running.
func (p *Proc) Start() error {
	_, err := p.get(false)
	return err
}

// Close ends the children (by closing their stdin) and waits for them.
func (p *Proc) Close() error {
	p.mu.Lock()
	cs := []*child{p.low, p.urgent}
	p.closed = true
	p.low, p.urgent = nil, nil
	p.mu.Unlock()
	for _, c := range cs {
		if c != nil {
			_ = c.stdin.Close()
			<-c.done
		}
	}
	return nil
}

// PID is the running low-priority child's process ID, 0 when none runs.
func (p *Proc) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.low == nil {
		return 0
	}
	return p.low.cmd.Process.Pid
}

// Escalated counts the hashes that waited Escalate in the low-priority child
// and were run at authd's own priority too.
func (p *Proc) Escalated() uint64 { return p.escalated.Load() }

func (p *Proc) get(urgent bool) (*child, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, fmt.Errorf("%w: closed", ErrUnavailable)
	}
	cur := &p.low
	if urgent {
		cur = &p.urgent
	}
	if *cur != nil {
		select {
		case <-(*cur).done:
		default:
			return *cur, nil
		}
	}
	c, err := p.start(urgent)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	*cur = c
	if p.started != nil && !urgent {
		p.started(c.cmd.Process.Pid)
	}
	return c, nil
}

func (p *Proc) start(urgent bool) (*child, error) {
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
	start := startLowPriority
	if urgent {
		start = (*exec.Cmd).Start
	}
	if err := start(cmd); err != nil {
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

// send writes req to the child and returns the channel its answer comes on
// (closed if the child dies first).
func (c *child) send(req request) (uint64, chan response, error) {
	ch := make(chan response, 1)
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return 0, nil, c.err
	}
	c.next++
	req.ID = c.next
	c.pending[req.ID] = ch
	c.mu.Unlock()
	c.wmu.Lock()
	err := c.enc.Encode(&req)
	c.wmu.Unlock()
	if err != nil {
		c.forget(req.ID)
		_ = c.cmd.Process.Kill() // a half-written request leaves the stream unusable
		return 0, nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return req.ID, ch, nil
}

// forget drops the answer to id when it comes.
func (c *child) forget(id uint64) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

// failure is why the child ended.
func (c *child) failure() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (p *Proc) call(ctx context.Context, req request) (response, error) {
	low, err := p.get(false)
	if err != nil {
		return response{}, err
	}
	lowID, lowCh, err := low.send(req)
	if err != nil {
		return response{}, err
	}
	t := time.NewTimer(p.escalate)
	defer t.Stop()
	select {
	case res, ok := <-lowCh:
		if !ok {
			return response{}, low.failure()
		}
		return res, nil
	case <-ctx.Done():
		low.forget(lowID)
		return response{}, fmt.Errorf("%w: %v", ErrUnavailable, ctx.Err())
	case <-t.C:
	}
	// Starved: run it at authd's own priority as well; the first answer
	// wins and the other is dropped. Without the urgent child, keep waiting.
	var upID uint64
	var upCh chan response
	up, err := p.get(true)
	if err == nil {
		upID, upCh, err = up.send(req)
	}
	if err == nil {
		p.escalated.Add(1)
	}
	for lowCh != nil || upCh != nil {
		select {
		case res, ok := <-lowCh:
			if ok {
				if upCh != nil {
					up.forget(upID)
				}
				return res, nil
			}
			lowCh = nil
		case res, ok := <-upCh:
			if ok {
				if lowCh != nil {
					low.forget(lowID)
				}
				return res, nil
			}
			upCh = nil
		case <-ctx.Done():
			low.forget(lowID)
			if upCh != nil {
				up.forget(upID)
			}
			return response{}, fmt.Errorf("%w: %v", ErrUnavailable, ctx.Err())
		}
	}
	return response{}, low.failure()
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
