package distributed

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"time"
)

// HandshakeVersion is the protocol version processes exchange; a process
// of another version is refused.
const HandshakeVersion = 1

// Peer is one process of a multi-host job.
type Peer struct {
	// Process is its index, 0…n−1 (0 is the coordinator).
	Process int `json:"process"`
	// Host names its machine (for messages).
	Host string `json:"host"`
	// GPUs is the number of devices it drives.
	GPUs int `json:"gpus"`
}

// Cluster is what every process knows after the handshake.
type Cluster struct {
	// Peers, by process index.
	Peers []Peer `json:"peers"`
}

// NumGPUs is the job's total device count.
func (c Cluster) NumGPUs() int {
	n := 0
	for _, p := range c.Peers {
		n += p.GPUs
	}
	return n
}

// FirstGPU is the global number of process p's first device (devices are
// numbered process by process).
func (c Cluster) FirstGPU(p int) int {
	n := 0
	for _, q := range c.Peers[:p] {
		n += q.GPUs
	}
	return n
}

// hello is a process's first message; welcome the coordinator's answer.
type hello struct {
	Version   int  `json:"version"`
	Processes int  `json:"processes"`
	Peer      Peer `json:"peer"`
}

type welcome struct {
	Cluster Cluster `json:"cluster"`
	Error   string  `json:"error,omitempty"`
}

// Handshake joins a job of n processes whose coordinator (process 0)
// listens on addr ("host:port"). Process 0 listens, waits for the other
// n−1 processes and sends everyone the cluster; the others dial (retrying
// until ctx ends) and wait for it. A process with another protocol
// version, another process count, an index out of range or taken twice,
// or no devices is refused with an error naming it, on both sides. It is
// the rendezvous a multi-host launcher runs before any device work (see
// docs/DISTRIBUTED.md).
func Handshake(ctx context.Context, addr string, n int, self Peer) (Cluster, error) {
	switch {
	case n < 1:
		return Cluster{}, fmt.Errorf("distributed: handshake: %d processes: need at least one", n)
	case self.Process < 0 || self.Process >= n:
		return Cluster{}, fmt.Errorf("distributed: handshake: process index %d out of range 0…%d", self.Process, n-1)
	case self.GPUs < 1:
		return Cluster{}, fmt.Errorf("distributed: handshake: process %d drives %d GPUs: need at least one", self.Process, self.GPUs)
	}
	if self.Process == 0 {
		return coordinate(ctx, addr, n, self)
	}
	return join(ctx, addr, n, self)
}

func coordinate(ctx context.Context, addr string, n int, self Peer) (Cluster, error) {
	c := Cluster{Peers: make([]Peer, n)}
	c.Peers[0] = self
	if n == 1 {
		return c, nil
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return Cluster{}, fmt.Errorf("distributed: coordinator: listening on %s: %w", addr, err)
	}
	defer ln.Close()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	conns := make([]net.Conn, n)
	defer func() {
		for _, cn := range conns {
			if cn != nil {
				cn.Close()
			}
		}
	}()
	for joined := 1; joined < n; {
		cn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return Cluster{}, fmt.Errorf("distributed: coordinator: %d of %d processes joined before %w", joined, n, ctx.Err())
			}
			return Cluster{}, fmt.Errorf("distributed: coordinator: accepting on %s: %w", addr, err)
		}
		if d, ok := ctx.Deadline(); ok {
			_ = cn.SetDeadline(d)
		}
		var h hello
		if err := json.NewDecoder(bufio.NewReader(cn)).Decode(&h); err != nil {
			cn.Close()
			continue // not one of ours: keep waiting
		}
		problem := ""
		switch p := h.Peer.Process; {
		case h.Version != HandshakeVersion:
			problem = fmt.Sprintf("protocol version %d, coordinator speaks %d", h.Version, HandshakeVersion)
		case h.Processes != n:
			problem = fmt.Sprintf("process %d expects %d processes, the coordinator %d", p, h.Processes, n)
		case p < 1 || p >= n:
			problem = fmt.Sprintf("process index %d out of range 1…%d", p, n-1)
		case conns[p] != nil:
			problem = fmt.Sprintf("process index %d joined twice (from %s and %s)", p, c.Peers[p].Host, h.Peer.Host)
		case h.Peer.GPUs < 1:
			problem = fmt.Sprintf("process %d drives %d GPUs", p, h.Peer.GPUs)
		}
		if problem != "" {
			_ = json.NewEncoder(cn).Encode(welcome{Error: problem})
			cn.Close()
			return Cluster{}, fmt.Errorf("distributed: coordinator: refused a process: %s", problem)
		}
		conns[h.Peer.Process] = cn
		c.Peers[h.Peer.Process] = h.Peer
		joined++
	}
	for p, cn := range conns[1:] {
		if err := json.NewEncoder(cn).Encode(welcome{Cluster: c}); err != nil {
			return Cluster{}, fmt.Errorf("distributed: coordinator: sending the cluster to process %d: %w", p+1, err)
		}
	}
	return c, nil
}

func join(ctx context.Context, addr string, n int, self Peer) (Cluster, error) {
	var d net.Dialer
	var cn net.Conn
	var err error
	for {
		if cn, err = d.DialContext(ctx, "tcp", addr); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return Cluster{}, fmt.Errorf("distributed: process %d: no coordinator at %s before %w (last: %v)", self.Process, addr, ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	defer cn.Close()
	stop := context.AfterFunc(ctx, func() { cn.Close() })
	defer stop()
	if err := json.NewEncoder(cn).Encode(hello{Version: HandshakeVersion, Processes: n, Peer: self}); err != nil {
		return Cluster{}, fmt.Errorf("distributed: process %d: sending to the coordinator: %w", self.Process, err)
	}
	var w welcome
	if err := json.NewDecoder(bufio.NewReader(cn)).Decode(&w); err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return Cluster{}, fmt.Errorf("distributed: process %d: waiting for the cluster: %w", self.Process, err)
	}
	if w.Error != "" {
		return Cluster{}, fmt.Errorf("distributed: process %d: the coordinator refused it: %s", self.Process, w.Error)
	}
	if len(w.Cluster.Peers) != n || w.Cluster.Peers[self.Process] != self {
		return Cluster{}, errors.New("distributed: process " + fmt.Sprint(self.Process) + ": the coordinator's cluster does not list this process as sent")
	}
	return w.Cluster, nil
}

// ClusterLayout is the multi-host form of the seed's layout: on every host
// the last rolloutPerHost GPUs generate (each serving its own host's
// share of prompts) and all the other GPUs of all hosts form one FSDP mesh,
// in global device order.
func ClusterLayout(c Cluster, rolloutPerHost int) (Layout, error) {
	if len(c.Peers) == 0 {
		return Layout{}, fmt.Errorf("distributed: cluster layout: no processes")
	}
	l := Layout{GPUs: c.NumGPUs()}
	for p, peer := range c.Peers {
		if rolloutPerHost < 1 || rolloutPerHost >= peer.GPUs {
			return Layout{}, fmt.Errorf("distributed: cluster layout: %d rollout GPUs per host on process %d (%s) with %d GPUs: need at least one of each role per host",
				rolloutPerHost, p, peer.Host, peer.GPUs)
		}
		first := c.FirstGPU(p)
		for g := range peer.GPUs {
			if g >= peer.GPUs-rolloutPerHost {
				l.Rollout = append(l.Rollout, first+g)
			} else {
				l.Train = append(l.Train, first+g)
			}
		}
	}
	slices.Sort(l.Train)
	return l, nil
}

// Environment variables a multi-host launcher sets (ProcessFlags.FromEnv).
const (
	EnvCoordinator  = "MMFT_COORDINATOR"
	EnvProcessID    = "MMFT_PROCESS_ID"
	EnvNumProcesses = "MMFT_NUM_PROCESSES"
)

// ProcessFlags are a multi-host job's launcher interface: the coordinator's
// address and this process's index and count (see docs/DISTRIBUTED.md).
type ProcessFlags struct {
	// Coordinator is process 0's "host:port" ("" for a one-host job).
	Coordinator string
	// ProcessID is this process's index, 0…NumProcesses−1.
	ProcessID int
	// NumProcesses is the job's process count (one per host).
	NumProcesses int
}

// Register adds --coordinator, --process-id and --num-processes to fs, with
// defaults from the environment (MMFT_COORDINATOR, MMFT_PROCESS_ID,
// MMFT_NUM_PROCESSES) when set and valid.
func (f *ProcessFlags) Register(fs *flag.FlagSet) {
	env, _ := ProcessFlagsFromEnv()
	fs.StringVar(&f.Coordinator, "coordinator", env.Coordinator, "multi-host: process 0's HOST:PORT (env "+EnvCoordinator+")")
	fs.IntVar(&f.ProcessID, "process-id", env.ProcessID, "multi-host: this process's index, 0 is the coordinator (env "+EnvProcessID+")")
	fs.IntVar(&f.NumProcesses, "num-processes", env.NumProcesses, "multi-host: number of processes, one per host (env "+EnvNumProcesses+")")
}

// ProcessFlagsFromEnv reads the launcher's environment variables; unset
// means a one-process job.
func ProcessFlagsFromEnv() (ProcessFlags, error) {
	f := ProcessFlags{Coordinator: os.Getenv(EnvCoordinator), NumProcesses: 1}
	for _, v := range []struct {
		name string
		dst  *int
	}{{EnvProcessID, &f.ProcessID}, {EnvNumProcesses, &f.NumProcesses}} {
		if s := os.Getenv(v.name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil {
				return ProcessFlags{Coordinator: f.Coordinator, NumProcesses: 1}, fmt.Errorf("distributed: $%s=%q is not a number", v.name, s)
			}
			*v.dst = n
		}
	}
	return f, f.Validate()
}

// Validate checks the flags: a count of at least one, an index in range,
// and a coordinator address ("host:port") whenever there are several.
func (f ProcessFlags) Validate() error {
	switch {
	case f.NumProcesses < 1:
		return fmt.Errorf("distributed: --num-processes %d: need at least one", f.NumProcesses)
	case f.ProcessID < 0 || f.ProcessID >= f.NumProcesses:
		return fmt.Errorf("distributed: --process-id %d is out of range 0…%d (--num-processes %d)", f.ProcessID, f.NumProcesses-1, f.NumProcesses)
	case f.NumProcesses > 1 && f.Coordinator == "":
		return fmt.Errorf("distributed: %d processes need --coordinator HOST:PORT (process 0's address)", f.NumProcesses)
	}
	if f.Coordinator != "" {
		if _, _, err := net.SplitHostPort(f.Coordinator); err != nil {
			return fmt.Errorf("distributed: --coordinator %q: want HOST:PORT: %w", f.Coordinator, err)
		}
	}
	return nil
}
