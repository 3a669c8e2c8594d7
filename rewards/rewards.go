// Package rewards scores model completions for GRPO: the seed's structural
// reward, a strict format check, a financial-answer accuracy reward, weighted
// sums of named components and a registry of rewards by name.
package rewards

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Input is what a reward sees of one sampled completion.
type Input struct {
	// Prefill is the assistant text placed in the prompt before generation
	// (for the seed "Let me solve this step by step.\n<think>"); rewards that
	// look at the whole output read Prefill + Completion.
	Prefill string
	// Completion is the generated text, decoded without special tokens.
	Completion string
	// CompletionIDs are the generated token ids (may be nil when unknown).
	CompletionIDs []int
	// Answer is the gold answer of the question.
	Answer string
	// Question is the question asked (may be empty).
	Question string
}

// Output returns Prefill + Completion, the text the format rewards judge.
func (in Input) Output() string { return in.Prefill + in.Completion }

// Func scores one completion. It must not panic on any input.
type Func func(Input) float64

// Registry maps reward names to functions. The zero value is not usable;
// create one with NewRegistry or Default.
type Registry struct {
	funcs map[string]Func
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{funcs: map[string]Func{}} }

// Default returns a registry holding the built-in rewards:
// "structural" (the seed's, 2.0 at best), "format" (strict, 0 or 1) and
// "accuracy" (the answer against the gold answer, 0 or 1, 1% relative tolerance).
func Default() *Registry {
	r := NewRegistry()
	// The built-in names are distinct and valid, so these cannot fail.
	_ = r.Register("structural", Structural)
	_ = r.Register("format", Format)
	_ = r.Register("accuracy", Accuracy{}.Score)
	return r
}

// Register adds a reward under name. Names are lower-case letters, digits,
// '_', '-' and '.'; registering a name twice is an error.
func (r *Registry) Register(name string, f Func) error {
	if err := checkName(name); err != nil {
		return err
	}
	if f == nil {
		return fmt.Errorf("reward %q: nil function", name)
	}
	if _, ok := r.funcs[name]; ok {
		return fmt.Errorf("reward %q is already registered; pick another name", name)
	}
	r.funcs[name] = f
	return nil
}

func checkName(name string) error {
	if name == "" {
		return errors.New("empty reward name")
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return fmt.Errorf("reward name %q: only lower-case letters, digits, '_', '-' and '.' are allowed", name)
		}
	}
	return nil
}

// Get returns the reward registered under name, or an error listing the known names.
func (r *Registry) Get(name string) (Func, error) {
	f, ok := r.funcs[name]
	if !ok {
		return nil, fmt.Errorf("unknown reward %q (known: %s)", name, strings.Join(r.Names(), ", "))
	}
	return f, nil
}

// Names returns the registered names in order.
func (r *Registry) Names() []string {
	return slices.Sorted(maps.Keys(r.funcs))
}

// Component is one named, weighted reward of a Set.
type Component struct {
	Name   string
	Weight float64
	Func   Func
}

// Set is a weighted sum of named rewards.
type Set struct {
	Components []Component
}

// Result is the score of a Set on one completion: the weighted total and each
// component's unweighted value, in the order of Set.Components.
type Result struct {
	Total  float64
	Names  []string
	Values []float64
}

// Map returns the component values keyed by name, for logging.
func (r Result) Map() map[string]float64 {
	m := make(map[string]float64, len(r.Names))
	for i, n := range r.Names {
		m[n] = r.Values[i]
	}
	return m
}

// Score evaluates every component on in and returns the weighted total with the parts.
func (s Set) Score(in Input) Result {
	res := Result{Names: make([]string, len(s.Components)), Values: make([]float64, len(s.Components))}
	for i, c := range s.Components {
		v := c.Func(in)
		res.Names[i] = c.Name
		res.Values[i] = v
		res.Total += c.Weight * v
	}
	return res
}

// Func returns the set's weighted total as a single reward.
func (s Set) Func() Func { return func(in Input) float64 { return s.Score(in).Total } }

// ParseSet builds a Set from a spec of comma-separated NAME or NAME=WEIGHT
// items (weight 1 when omitted), e.g. "structural=0.5,accuracy=1", looking the
// names up in r.
func (r *Registry) ParseSet(spec string) (Set, error) {
	var s Set
	seen := map[string]bool{}
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return Set{}, fmt.Errorf("reward set %q: empty item; write NAME or NAME=WEIGHT separated by commas", spec)
		}
		name, wstr, hasW := strings.Cut(item, "=")
		name = strings.TrimSpace(name)
		w := 1.0
		if hasW {
			var err error
			w, err = strconv.ParseFloat(strings.TrimSpace(wstr), 64)
			if err != nil || math.IsNaN(w) || math.IsInf(w, 0) {
				return Set{}, fmt.Errorf("reward set %q: weight of %q is %q, not a finite number", spec, name, wstr)
			}
		}
		f, err := r.Get(name)
		if err != nil {
			return Set{}, fmt.Errorf("reward set %q: %w", spec, err)
		}
		if seen[name] {
			return Set{}, fmt.Errorf("reward set %q: %q appears twice", spec, name)
		}
		seen[name] = true
		s.Components = append(s.Components, Component{Name: name, Weight: w, Func: f})
	}
	return s, nil
}
