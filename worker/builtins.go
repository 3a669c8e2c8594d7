package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"runtime"
	"strconv"
	"time"
)

// Pong is the result of the ping command.
type Pong struct {
	PID  int       `json:"pid"`
	Time time.Time `json:"time"`
}

func (s *Server) ping(ctx context.Context, req json.RawMessage, progress func(any)) (any, error) {
	return Pong{PID: os.Getpid(), Time: time.Now().UTC()}, nil
}

// Status is the result of the status command.
type Status struct {
	Name    string    `json:"name"`
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
	// UptimeSeconds is the time since the worker started.
	UptimeSeconds float64 `json:"uptime_seconds"`
	// RSSBytes is the resident memory of the process (Linux; 0 elsewhere).
	RSSBytes uint64 `json:"rss_bytes"`
	// HeapBytes is the Go heap in use.
	HeapBytes uint64 `json:"heap_bytes"`
	// Commands lists the registered commands, sorted.
	Commands []string `json:"commands"`
	// Running lists the commands in flight other than this status request
	// (the exclusive one running, those queued behind it, concurrent ones).
	Running   []RunningCommand `json:"running"`
	GoVersion string           `json:"go_version"`
}

// RunningCommand is one command in flight, in Status.
type RunningCommand struct {
	Command   string    `json:"command"`
	RequestID string    `json:"request_id"`
	Since     time.Time `json:"since"`
	// Queued is true while the command waits for the running one.
	Queued bool `json:"queued"`
}

func (s *Server) status(ctx context.Context, req json.RawMessage, progress func(any)) (any, error) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	self := RequestID(ctx)
	s.mu.Lock()
	st := Status{
		Name:          s.cfg.Name,
		PID:           os.Getpid(),
		Started:       s.started.UTC(),
		UptimeSeconds: time.Since(s.started).Seconds(),
		RSSBytes:      rss(),
		HeapBytes:     ms.HeapAlloc,
		Commands:      s.commandNames(),
		Running:       []RunningCommand{},
		GoVersion:     runtime.Version(),
	}
	for _, c := range s.inflight {
		if c.id != self {
			st.Running = append(st.Running, RunningCommand{Command: c.name, RequestID: c.id, Since: c.since.UTC(), Queued: !c.running})
		}
	}
	s.mu.Unlock()
	return st, nil
}

// rss returns the resident set size from /proc/self/statm (0 where unknown).
func rss() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseUint(string(f[1]), 10, 64)
	if err != nil {
		return 0
	}
	return pages * uint64(os.Getpagesize())
}

func (s *Server) shutdown(ctx context.Context, req json.RawMessage, progress func(any)) (any, error) {
	s.requestStop("shutdown requested")
	return struct{}{}, nil
}

// SleepArgs is the request of the sleep command.
type SleepArgs struct {
	// Seconds to sleep, 0 to 86400.
	Seconds float64 `json:"seconds"`
	// Every is the interval of progress events in seconds (0: none).
	Every float64 `json:"every"`
}

// SleepProgress is a progress event of the sleep command, and its result.
type SleepProgress struct {
	Slept float64 `json:"slept"`
}

// Sleep is the handler of the sleep command (registered by New): it sleeps,
// publishing SleepProgress every SleepArgs.Every seconds, and returns early
// with ctx's error when cancelled. It exists to exercise progress and
// cancellation.
func Sleep(ctx context.Context, req json.RawMessage, progress func(any)) (any, error) {
	var a SleepArgs
	if err := json.Unmarshal(req, &a); err != nil {
		return nil, fmt.Errorf("sleep: want {\"seconds\": S, \"every\": E}: %w", err)
	}
	if math.IsNaN(a.Seconds) || a.Seconds < 0 || a.Seconds > 86400 {
		return nil, fmt.Errorf("sleep: seconds %v: give 0 to 86400", a.Seconds)
	}
	if math.IsNaN(a.Every) || a.Every < 0 {
		return nil, fmt.Errorf("sleep: every %v: give a number of seconds ≥ 0", a.Every)
	}
	start := time.Now()
	end := start.Add(time.Duration(a.Seconds * float64(time.Second)))
	var tick <-chan time.Time
	if a.Every > 0 {
		t := time.NewTicker(max(time.Duration(a.Every*float64(time.Second)), time.Millisecond))
		defer t.Stop()
		tick = t.C
	}
	timer := time.NewTimer(time.Until(end))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timer.C:
			return SleepProgress{Slept: time.Since(start).Seconds()}, nil
		case <-tick:
			progress(SleepProgress{Slept: time.Since(start).Seconds()})
		}
	}
}
