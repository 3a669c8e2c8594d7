package distributed

import (
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Layout says which GPUs (device numbers of one host's backend) generate
// rollouts and which train. Colocated: one GPU does both and the engine and
// trainer share one copy of the base weights. Split: disjoint sets; the
// training GPUs form the FSDP mesh, in the order listed.
type Layout struct {
	// GPUs is the number of devices found.
	GPUs int `json:"gpus"`
	// Rollout are the rollout engine's GPUs.
	Rollout []int `json:"rollout_gpus"`
	// Train are the trainer's GPUs (the FSDP mesh).
	Train []int `json:"train_gpus"`
}

// Colocated reports whether one GPU both generates and trains.
func (l Layout) Colocated() bool {
	return len(l.Rollout) == 1 && len(l.Train) == 1 && l.Rollout[0] == l.Train[0]
}

// String describes the layout: "colocated on GPU 0" or
// "split: rollouts on GPU [3], training on GPUs [0 1 2] (FSDP over 3)".
func (l Layout) String() string {
	if l.Colocated() {
		return fmt.Sprintf("colocated on GPU %d of %d", l.Train[0], l.GPUs)
	}
	return fmt.Sprintf("split: rollouts on GPUs %v, training on GPUs %v (FSDP over %d) of %d", l.Rollout, l.Train, len(l.Train), l.GPUs)
}

// DefaultLayout is the seed's layout for n GPUs: one GPU colocated; from two
// on, the last GPU generates and the others train.
func DefaultLayout(n int) (Layout, error) {
	switch {
	case n < 1:
		return Layout{}, fmt.Errorf("distributed: %d GPUs found: need at least one device", n)
	case n == 1:
		return Layout{GPUs: 1, Rollout: []int{0}, Train: []int{0}}, nil
	}
	train := make([]int, n-1)
	for i := range train {
		train[i] = i
	}
	return Layout{GPUs: n, Rollout: []int{n - 1}, Train: train}, nil
}

// NewLayout returns the layout for the --rollout-gpus and --train-gpus lists
// (each "", "0,1,2" or a range "1-3") on n GPUs. Both empty: DefaultLayout.
// One empty: the GPUs the other leaves, or, when it leaves none and names
// one GPU, that GPU colocated. Lists must be in range, without repeats, and
// disjoint unless both name the same single GPU.
func NewLayout(rollout, train string, n int) (Layout, error) {
	if n < 1 {
		return Layout{}, fmt.Errorf("distributed: %d GPUs found: need at least one device", n)
	}
	if strings.TrimSpace(rollout) == "" && strings.TrimSpace(train) == "" {
		return DefaultLayout(n)
	}
	r, err := ParseGPUs(rollout, n)
	if err != nil {
		return Layout{}, fmt.Errorf("distributed: --rollout-gpus: %w", err)
	}
	t, err := ParseGPUs(train, n)
	if err != nil {
		return Layout{}, fmt.Errorf("distributed: --train-gpus: %w", err)
	}
	switch {
	case r == nil:
		if r = complement(t, n); r == nil {
			if len(t) != 1 {
				return Layout{}, fmt.Errorf("distributed: --train-gpus %s takes all %d GPUs: give --rollout-gpus too (one of them to share, or fewer training GPUs)", train, n)
			}
			r = slices.Clone(t)
		}
	case t == nil:
		if t = complement(r, n); t == nil {
			if len(r) != 1 {
				return Layout{}, fmt.Errorf("distributed: --rollout-gpus %s takes all %d GPUs: give --train-gpus too", rollout, n)
			}
			t = slices.Clone(r)
		}
	}
	l := Layout{GPUs: n, Rollout: r, Train: t}
	if !l.Colocated() {
		for _, g := range r {
			if slices.Contains(t, g) {
				return Layout{}, fmt.Errorf("distributed: GPU %d is in both --rollout-gpus %v and --train-gpus %v: the lists must be disjoint (or both the same single GPU, colocated)", g, r, t)
			}
		}
	}
	return l, nil
}

// ParseGPUs parses a GPU list ("0,1,2", "1-3", "0,2-3"; "" gives nil) for n
// GPUs, refusing numbers out of range and repeats.
func ParseGPUs(s string, n int) ([]int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var out []int
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(strings.TrimSpace(lo))
		if err != nil || part == "" {
			return nil, fmt.Errorf("%q: %q is not a GPU number (want e.g. 0,1,2 or 1-3)", s, part)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(strings.TrimSpace(hi)); err != nil || b < a {
				return nil, fmt.Errorf("%q: %q is not a range of GPUs (want LOW-HIGH, e.g. 1-3)", s, part)
			}
		}
		for g := a; g <= b; g++ {
			if g < 0 || g >= n {
				return nil, fmt.Errorf("%q: GPU %d is out of range: %d GPU(s) found, numbered 0 to %d", s, g, n, n-1)
			}
			if slices.Contains(out, g) {
				return nil, fmt.Errorf("%q: GPU %d is listed twice", s, g)
			}
			out = append(out, g)
		}
	}
	return out, nil
}

// complement lists the GPUs of 0…n−1 not in gs (nil when none).
func complement(gs []int, n int) []int {
	var out []int
	for g := range n {
		if !slices.Contains(gs, g) {
			out = append(out, g)
		}
	}
	return out
}

// Flags are the layout's command-line flags (and, for the commands that
// train, the off-policy option).
type Flags struct {
	// RolloutGPUs is --rollout-gpus.
	RolloutGPUs string `json:"rollout_gpus,omitempty"`
	// TrainGPUs is --train-gpus.
	TrainGPUs string `json:"train_gpus,omitempty"`
	// MaxStaleness is --max-staleness: how many optimizer steps the rollout
	// engine's adapter may lag behind the trainer's in the split layout
	// (0: synced before every rollout batch, on-policy).
	MaxStaleness int `json:"max_staleness,omitempty"`
}

// Register adds --rollout-gpus and --train-gpus to fs.
func (f *Flags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.RolloutGPUs, "rollout-gpus", "", "GPU of the rollout engine, e.g. 3 (default: the last GPU; with one GPU, shared with training)")
	fs.StringVar(&f.TrainGPUs, "train-gpus", "", "GPUs of the trainer (the FSDP mesh), e.g. 0,1,2 or 0-2 (default: all but the rollout GPU)")
}

// RegisterTraining adds --rollout-gpus, --train-gpus and --max-staleness to
// fs (the commands that train).
func (f *Flags) RegisterTraining(fs *flag.FlagSet) {
	f.Register(fs)
	fs.IntVar(&f.MaxStaleness, "max-staleness", 0, "split layout only: optimizer steps the rollout engine's adapter may lag behind training (0: synced before every rollout batch, on-policy; N > 0 is off-policy)")
}

// Layout resolves the flags for n GPUs (see NewLayout) and checks
// --max-staleness.
func (f *Flags) Layout(n int) (Layout, error) {
	if f.MaxStaleness < 0 {
		return Layout{}, fmt.Errorf("distributed: --max-staleness %d: give 0 (on-policy) or a positive number of steps", f.MaxStaleness)
	}
	l, err := NewLayout(f.RolloutGPUs, f.TrainGPUs, n)
	if err != nil {
		return Layout{}, err
	}
	if f.MaxStaleness > 0 && l.Colocated() {
		return Layout{}, fmt.Errorf("distributed: --max-staleness %d needs the split layout (--rollout-gpus and --train-gpus on different GPUs): the layout is %s, where the engine reads the trainer's adapter, always current",
			f.MaxStaleness, l)
	}
	return l, nil
}

// MaxGPUs bounds the GPU numbers Flags.Check accepts before the devices
// are known.
const MaxGPUs = 4096

// Check validates what the flags say on their own, before the devices are
// known (a worker opens its backend later): the lists' syntax, repeats,
// overlap and --max-staleness. Layout checks them again against the
// devices found.
func (f Flags) Check() error {
	if f.MaxStaleness < 0 {
		return fmt.Errorf("distributed: --max-staleness %d: give 0 (on-policy) or a positive number of steps", f.MaxStaleness)
	}
	r, err := ParseGPUs(f.RolloutGPUs, MaxGPUs)
	if err != nil {
		return fmt.Errorf("distributed: --rollout-gpus: %w", err)
	}
	t, err := ParseGPUs(f.TrainGPUs, MaxGPUs)
	if err != nil {
		return fmt.Errorf("distributed: --train-gpus: %w", err)
	}
	if len(r) == 1 && len(t) == 1 && r[0] == t[0] {
		return nil // colocated
	}
	for _, g := range r {
		if slices.Contains(t, g) {
			return fmt.Errorf("distributed: GPU %d is in both --rollout-gpus %v and --train-gpus %v: the lists must be disjoint (or both the same single GPU, colocated)", g, r, t)
		}
	}
	return nil
}

// CheckRollout returns an error when l generates on more than one GPU: the
// rollout engine runs on one device.
func (l Layout) CheckRollout() error {
	if len(l.Rollout) != 1 {
		return fmt.Errorf("distributed: --rollout-gpus %v: the rollout engine runs on one GPU; give one (the others can train with --train-gpus)", l.Rollout)
	}
	return nil
}
