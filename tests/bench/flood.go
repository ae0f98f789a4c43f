package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"
)

// floodReport is what `bench flood` prints (JSON) for the driver.
type floodReport struct {
	Attempts int                  `json:"attempts"`
	Status   map[string]int       `json:"status"`     // POST status (or "error") → count
	Latency  map[string][]float64 `json:"latency_ms"` // status → p50, p99 of the POST, ms
	Right    map[string]int       `json:"right"`      // outcomes of right-password attempts
	Wrong    map[string]int       `json:"wrong"`      // outcomes of wrong-password attempts
	Errors   []string             `json:"errors,omitempty"`
	Seconds  float64              `json:"seconds"`
	raw      map[string][]time.Duration
}

// runFlood is `bench flood`: n concurrent clients log in through nginx in
// waves, all at once every -every (a client still waiting for its previous
// answer skips a wave), until the duration ends. Even-numbered clients use the
// right password, odd-numbered ones a wrong one; each client has its own
// X-Forwarded-For address and its own loopback source address (127.77.x.y). -every 0 makes each client retry at once.
// It runs as its own process so the driver can measure its CPU.
func runFlood(args []string) error {
	fs := flag.NewFlagSet("flood", flag.ContinueOnError)
	site := fs.String("site", "", "nginx origin")
	n := fs.Int("n", 500, "concurrent clients")
	d := fs.Duration("d", 8*time.Second, "how long")
	every := fs.Duration("every", time.Second, "time between waves; 0: retry at once")
	password := fs.String("password", "", "the right password")
	if err := fs.Parse(args); err != nil {
		return err
	}
	rep := floodReport{Status: map[string]int{}, Right: map[string]int{}, Wrong: map[string]int{},
		Latency: map[string][]float64{}, raw: map[string][]time.Duration{}}
	var mu sync.Mutex
	ctx, cancel := context.WithTimeout(context.Background(), *d)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for i := range *n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			xff := fmt.Sprintf("10.77.%d.%d", i/250, i%250+1)
			// Its own loopback source address too, so nginx (its per-address login
			// limit) sees as many clients as authd does.
			lc := newLoginClientFrom(*site, 1, net.IPv4(127, 77, byte(i/250), byte(i%250+1)))
			pw, side := *password, rep.Right
			if i%2 == 1 {
				pw, side = "wrong-"+strconv.Itoa(i), rep.Wrong
			}
			for wave := 1; ctx.Err() == nil; wave++ {
				t := time.Now()
				code, _, err := lc.login(benchUser, pw, xff)
				took := time.Since(t)
				key := strconv.Itoa(code)
				mu.Lock()
				if err != nil {
					key = "error"
					if len(rep.Errors) < 5 {
						rep.Errors = append(rep.Errors, err.Error())
					}
				}
				rep.Attempts++
				rep.Status[key]++
				side[key]++
				rep.raw[key] = append(rep.raw[key], took)
				mu.Unlock()
				if *every > 0 {
					next := start.Add(time.Duration(wave) * *every)
					for time.Until(next) < 0 {
						wave++
						next = start.Add(time.Duration(wave) * *every)
					}
					select {
					case <-time.After(time.Until(next)):
					case <-ctx.Done():
					}
				}
			}
		}()
	}
	wg.Wait()
	rep.Seconds = time.Since(start).Seconds()
	for k, v := range rep.raw {
		slices.Sort(v)
		rep.Latency[k] = []float64{ms(v[len(v)/2]), ms(v[len(v)*99/100])}
	}
	return json.NewEncoder(os.Stdout).Encode(rep)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
