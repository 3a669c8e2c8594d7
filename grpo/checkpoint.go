package grpo

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/mmft-go/mmft/internal/atomicfile"
	"github.com/mmft-go/mmft/lora"
	"github.com/mmft-go/mmft/safetensors"
)

// Names inside a checkpoint directory.
const (
	// AdapterDir is the PEFT adapter folder (adapter_config.json, adapter_model.safetensors).
	AdapterDir = "adapter"
	// OptimizerFile holds the AdamW state: "m/NAME" and "v/NAME" per
	// parameter, and the int64 scalars "step" and "skipped".
	OptimizerFile = "optimizer.safetensors"
	// StateFile is the JSON TrainState.
	StateFile = "state.json"
	// CheckpointFormat is the version of the layout written by SaveCheckpoint.
	CheckpointFormat = 1
)

// Checkpoint is everything needed to resume a run exactly.
type Checkpoint struct {
	// Adapter is the LoRA adapter being trained.
	Adapter *lora.Adapter
	// Optimizer is the AdamW state of the adapter's parameters, named as by
	// AdapterParams.
	Optimizer *OptimizerState
	// State is the loop's state.
	State TrainState
}

// TrainState is the loop's state: positions, random streams, configuration
// and metrics. Every number round-trips exactly.
type TrainState struct {
	// Format is CheckpointFormat (set by SaveCheckpoint).
	Format int `json:"format"`
	// GlobalStep is the loop's step count when the checkpoint was taken.
	GlobalStep int64 `json:"global_step"`
	// ScheduleStep is the learning-rate schedule's position.
	ScheduleStep int `json:"schedule_step"`
	// TotalSteps is the schedule's length.
	TotalSteps int `json:"total_steps"`
	// RNG holds every random stream by name ("sampler", "data", "dropout", …).
	RNG map[string]RandomStream `json:"rng"`
	// Data is the position in the training data.
	Data DataPosition `json:"data"`
	// Config is the run's configuration.
	Config Config `json:"config"`
	// Metrics is the metrics history, one record per logged step.
	Metrics []Metrics `json:"metrics"`
	// Files maps each file of the checkpoint (relative path) to its SHA-256,
	// checked by LoadCheckpoint (set by SaveCheckpoint).
	Files map[string]string `json:"files"`
}

// RandomStream is a random stream as an explicit seed and counter (the number of
// values or blocks drawn), plus, optionally, a generator's own serialized
// state (e.g. math/rand/v2's PCG.MarshalBinary).
type RandomStream struct {
	Seed    uint64 `json:"seed"`
	Counter uint64 `json:"counter"`
	State   []byte `json:"state,omitempty"`
}

// DataPosition is where the next batch starts: the epoch and the index of
// the next sample in that epoch's order (the order comes from the "data" RNG).
type DataPosition struct {
	Epoch int `json:"epoch"`
	Index int `json:"index"`
}

// Metrics is one metrics record; values may be NaN or ±Inf (written as the
// strings "NaN", "+Inf", "-Inf").
type Metrics map[string]Float

// Float is a float64 whose JSON form keeps NaN and ±Inf (as strings).
type Float float64

// MarshalJSON writes finite values as numbers and the others as strings.
func (f Float) MarshalJSON() ([]byte, error) {
	v := float64(f)
	switch {
	case math.IsNaN(v):
		return []byte(`"NaN"`), nil
	case math.IsInf(v, 1):
		return []byte(`"+Inf"`), nil
	case math.IsInf(v, -1):
		return []byte(`"-Inf"`), nil
	}
	return strconv.AppendFloat(nil, v, 'g', -1, 64), nil
}

// UnmarshalJSON reads what MarshalJSON writes.
func (f *Float) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case `"NaN"`:
		*f = Float(math.NaN())
	case `"+Inf"`:
		*f = Float(math.Inf(1))
	case `"-Inf"`:
		*f = Float(math.Inf(-1))
	default:
		v, err := strconv.ParseFloat(string(b), 64)
		if err != nil {
			return fmt.Errorf("metric value %s is not a number", b)
		}
		*f = Float(v)
	}
	return nil
}

// AdapterParams returns the names and shapes of an adapter's trainable
// tensors, in the order the optimizer state uses: for each module (sorted),
// "MODULE.lora_A" [r, in] then "MODULE.lora_B" [out, r].
func AdapterParams(ad *lora.Adapter) (names []string, shapes [][]int) {
	for _, name := range ad.Names() {
		m := ad.Modules[name]
		names = append(names, name+".lora_A", name+".lora_B")
		shapes = append(shapes, []int{m.R, m.In}, []int{m.Out, m.R})
	}
	return names, shapes
}

// SaveCheckpoint writes ck to the directory dir atomically: everything goes
// to a temporary directory beside dir, each file written and synced through a
// temporary file, and the directory is renamed into place only when complete
// (an existing dir is replaced). A reader never sees a partial checkpoint.
func SaveCheckpoint(dir string, ck *Checkpoint) (err error) {
	if ck == nil || ck.Adapter == nil || ck.Optimizer == nil {
		return errors.New("grpo: SaveCheckpoint: the checkpoint needs an adapter and an optimizer state")
	}
	if err := checkOptimizerMatches(ck.Adapter, ck.Optimizer); err != nil {
		return fmt.Errorf("grpo: SaveCheckpoint: %w", err)
	}
	dir = filepath.Clean(dir)
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("grpo: checkpoint: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return fmt.Errorf("grpo: checkpoint: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err := ck.Adapter.Save(filepath.Join(tmp, AdapterDir)); err != nil {
		return fmt.Errorf("grpo: checkpoint %s: %w", dir, err)
	}
	if err := writeOptimizer(filepath.Join(tmp, OptimizerFile), ck.Optimizer); err != nil {
		return fmt.Errorf("grpo: checkpoint %s: %w", dir, err)
	}
	st := ck.State
	st.Format = CheckpointFormat
	if st.Files, err = hashFiles(tmp); err != nil {
		return fmt.Errorf("grpo: checkpoint %s: %w", dir, err)
	}
	js, err := json.MarshalIndent(st, "", " ")
	if err != nil {
		return fmt.Errorf("grpo: checkpoint %s: state: %w", dir, err)
	}
	if err := atomicfile.WriteBytes(filepath.Join(tmp, StateFile), append(js, '\n')); err != nil {
		return fmt.Errorf("grpo: checkpoint %s: %w", dir, err)
	}
	if err := syncDir(tmp); err != nil {
		return fmt.Errorf("grpo: checkpoint %s: %w", dir, err)
	}
	if err := replaceDir(tmp, dir); err != nil {
		return fmt.Errorf("grpo: checkpoint %s: %w", dir, err)
	}
	return syncDir(parent)
}

// replaceDir renames tmp to dir, moving an existing dir aside first and
// removing it after.
func replaceDir(tmp, dir string) error {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return os.Rename(tmp, dir)
	}
	old, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".old-")
	if err != nil {
		return err
	}
	if err := os.Rename(dir, filepath.Join(old, "x")); err != nil {
		os.Remove(old)
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.Rename(filepath.Join(old, "x"), dir) // put the old one back
		os.Remove(old)
		return err
	}
	return os.RemoveAll(old)
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}

// writeOptimizer saves the optimizer state as safetensors; the metadata
// "params" keeps the parameter order.
func writeOptimizer(path string, s *OptimizerState) error {
	ts := []safetensors.NamedTensor{
		safetensors.FromInt64("step", nil, []int64{s.Step}),
		safetensors.FromInt64("skipped", nil, []int64{s.Skipped}),
	}
	names := make([]string, len(s.Params))
	for i, p := range s.Params {
		names[i] = p.Name
		ts = append(ts, safetensors.FromFloat32("m/"+p.Name, p.Shape, p.M), safetensors.FromFloat32("v/"+p.Name, p.Shape, p.V))
	}
	order, err := json.Marshal(names)
	if err != nil {
		return err
	}
	return safetensors.Write(path, ts, map[string]string{"format": "mmft-adamw", "params": string(order)})
}

// hashFiles returns the SHA-256 of every regular file under dir, by relative path.
func hashFiles(dir string) (map[string]string, error) {
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		if rel == StateFile {
			return nil
		}
		sum, err := hashFile(path)
		if err != nil {
			return err
		}
		out[filepath.ToSlash(rel)] = sum
		return nil
	})
	return out, err
}

func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// MaxStateFileBytes bounds the size of state.json (the metrics history included).
const MaxStateFileBytes = 1 << 30

// LoadCheckpoint reads a checkpoint written by SaveCheckpoint. Missing,
// truncated or altered pieces (checked against the SHA-256 sums recorded in
// state.json) are errors naming the piece.
func LoadCheckpoint(dir string) (*Checkpoint, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("grpo: checkpoint: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("grpo: checkpoint %s is not a folder", dir)
	}
	state, err := readState(dir)
	if err != nil {
		return nil, fmt.Errorf("grpo: checkpoint %s: %w", dir, err)
	}
	for _, need := range []string{OptimizerFile, AdapterDir + "/" + lora.WeightsFile, AdapterDir + "/" + lora.ConfigFile} {
		if _, ok := state.Files[need]; !ok {
			return nil, fmt.Errorf("grpo: checkpoint %s: %s does not list %s", dir, StateFile, need)
		}
	}
	for _, rel := range slices.Sorted(maps.Keys(state.Files)) {
		sum, err := hashFile(filepath.Join(dir, filepath.FromSlash(rel)))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("grpo: checkpoint %s: %s is missing", dir, rel)
		}
		if err != nil {
			return nil, fmt.Errorf("grpo: checkpoint %s: %w", dir, err)
		}
		if sum != state.Files[rel] {
			return nil, fmt.Errorf("grpo: checkpoint %s: %s is corrupt (its SHA-256 differs from the one recorded in %s)", dir, rel, StateFile)
		}
	}
	ad, err := lora.Load(filepath.Join(dir, AdapterDir))
	if err != nil {
		return nil, fmt.Errorf("grpo: checkpoint %s: %w", dir, err)
	}
	opt, err := readOptimizer(filepath.Join(dir, OptimizerFile))
	if err != nil {
		return nil, fmt.Errorf("grpo: checkpoint %s: %s: %w", dir, OptimizerFile, err)
	}
	if err := checkOptimizerMatches(ad, opt); err != nil {
		return nil, fmt.Errorf("grpo: checkpoint %s: %w", dir, err)
	}
	return &Checkpoint{Adapter: ad, Optimizer: opt, State: state}, nil
}

// readState reads and checks state.json.
func readState(dir string) (TrainState, error) {
	var st TrainState
	path := filepath.Join(dir, StateFile)
	info, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, fmt.Errorf("no %s: the folder is not a checkpoint, or one whose writing did not finish", StateFile)
	}
	if err != nil {
		return st, err
	}
	if info.Size() > MaxStateFileBytes {
		return st, fmt.Errorf("%s is %d bytes, more than the %d-byte limit", StateFile, info.Size(), MaxStateFileBytes)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return st, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return st, fmt.Errorf("%s is corrupt: %w", StateFile, err)
	}
	if st.Format != CheckpointFormat {
		return st, fmt.Errorf("%s has format %d; this mmft reads format %d", StateFile, st.Format, CheckpointFormat)
	}
	if st.Files == nil {
		return st, fmt.Errorf("%s lists no files", StateFile)
	}
	return st, nil
}

// readOptimizer reads what writeOptimizer wrote.
func readOptimizer(path string) (*OptimizerState, error) {
	f, err := safetensors.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var names []string
	if err := json.Unmarshal([]byte(f.Metadata()["params"]), &names); err != nil {
		return nil, fmt.Errorf("the metadata has no parameter list \"params\": %w", err)
	}
	scalar := func(name string) (int64, error) {
		info, ok := f.Tensor(name)
		if !ok {
			return 0, fmt.Errorf("no tensor %q", name)
		}
		v, err := safetensors.ToInt64(info)
		if err != nil || len(v) != 1 || len(info.Shape) != 0 {
			return 0, fmt.Errorf("tensor %q is %s %v; want an int64 scalar", name, info.DType, info.Shape)
		}
		return v[0], nil
	}
	s := &OptimizerState{Params: make([]ParamState, len(names))}
	if s.Step, err = scalar("step"); err != nil {
		return nil, err
	}
	if s.Skipped, err = scalar("skipped"); err != nil {
		return nil, err
	}
	for i, name := range names {
		p := ParamState{Name: name}
		for _, part := range []struct {
			key string
			dst *[]float32
		}{{"m/" + name, &p.M}, {"v/" + name, &p.V}} {
			info, ok := f.Tensor(part.key)
			if !ok {
				return nil, fmt.Errorf("no tensor %q for parameter %s", part.key, name)
			}
			if info.DType != safetensors.F32 {
				return nil, fmt.Errorf("tensor %q is %s; want F32", part.key, info.DType)
			}
			if p.Shape == nil {
				p.Shape = slices.Clone(info.Shape)
			} else if !slices.Equal(p.Shape, info.Shape) {
				return nil, fmt.Errorf("parameter %s: m is %v but v is %v", name, p.Shape, info.Shape)
			}
			if *part.dst, err = safetensors.ToFloat32(info); err != nil {
				return nil, fmt.Errorf("tensor %q: %w", part.key, err)
			}
		}
		s.Params[i] = p
	}
	if want := 2 + 2*len(names); len(f.Names()) != want {
		return nil, fmt.Errorf("holds %d tensors; want %d (step, skipped, m and v of %d parameters)", len(f.Names()), want, len(names))
	}
	return s, nil
}

// checkOptimizerMatches verifies that the optimizer state has exactly the
// adapter's parameters (AdapterParams), in order and shape.
func checkOptimizerMatches(ad *lora.Adapter, s *OptimizerState) error {
	names, shapes := AdapterParams(ad)
	if len(s.Params) != len(names) {
		return fmt.Errorf("the optimizer state has %d parameters but the adapter has %d trainable tensors", len(s.Params), len(names))
	}
	for i, p := range s.Params {
		if p.Name != names[i] || !slices.Equal(p.Shape, shapes[i]) {
			return fmt.Errorf("optimizer parameter %d is %s %v but the adapter's is %s %v", i, p.Name, p.Shape, names[i], shapes[i])
		}
		n := 1
		for _, d := range p.Shape {
			n *= d
		}
		if len(p.M) != n || len(p.V) != n {
			return fmt.Errorf("optimizer parameter %s holds %d and %d moment values; want %d", p.Name, len(p.M), len(p.V), n)
		}
	}
	return nil
}

// CheckpointPrefix starts the name of every checkpoint directory.
const CheckpointPrefix = "checkpoint-"

// CheckpointDir returns the directory of the checkpoint at step under root.
func CheckpointDir(root string, step int) string {
	return filepath.Join(root, fmt.Sprintf("%s%06d", CheckpointPrefix, step))
}

// ListCheckpoints returns the steps of the checkpoints under root (folders
// named by CheckpointDir that hold a state.json), sorted. Temporary folders
// of unfinished saves are not listed.
func ListCheckpoints(root string) ([]int, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("grpo: checkpoints: %w", err)
	}
	var steps []int
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), CheckpointPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		step, err := strconv.Atoi(rest)
		if err != nil || step < 0 || CheckpointDir(root, step) != filepath.Join(root, e.Name()) {
			continue
		}
		if _, err := os.Stat(filepath.Join(root, e.Name(), StateFile)); err != nil {
			continue
		}
		steps = append(steps, step)
	}
	slices.Sort(steps)
	return steps, nil
}

// Retention is the checkpoint policy: save every Every steps, at Keep evenly
// spaced points of a TotalSteps-step run and at its end; keep the checkpoint
// at (or last before) each evenly spaced point, plus the latest.
type Retention struct {
	// Keep is the number of evenly spaced checkpoints (the seed's save_number).
	Keep int
	// Every saves a checkpoint every this many steps (0: never besides the points).
	Every int
	// TotalSteps is the length of the run.
	TotalSteps int
}

// Targets returns the evenly spaced points ⌊i·TotalSteps/Keep⌋, i = 1…Keep,
// as the seed computes them (without its floating-point rounding), without
// duplicates or zeros.
func (r Retention) Targets() []int {
	var out []int
	for i := 1; i <= r.Keep && r.TotalSteps > 0; i++ {
		t := int(int64(i) * int64(r.TotalSteps) / int64(r.Keep))
		if t > 0 && (len(out) == 0 || out[len(out)-1] != t) {
			out = append(out, t)
		}
	}
	return out
}

// ShouldSave reports whether the loop saves a checkpoint after step (1-based count of steps done).
func (r Retention) ShouldSave(step int) bool {
	if step <= 0 {
		return false
	}
	if step == r.TotalSteps || (r.Every > 0 && step%r.Every == 0) {
		return true
	}
	_, found := slices.BinarySearch(r.Targets(), step)
	return found
}

// Select splits the saved steps into those to keep (for each target, the
// latest saved step at or before it; and the latest saved step) and those to drop.
func (r Retention) Select(saved []int) (keep, drop []int) {
	s := slices.Clone(saved)
	slices.Sort(s)
	s = slices.Compact(s)
	if len(s) == 0 {
		return nil, nil
	}
	kept := map[int]bool{s[len(s)-1]: true}
	for _, t := range r.Targets() {
		i, found := slices.BinarySearch(s, t)
		if !found {
			i--
		}
		if i >= 0 {
			kept[s[i]] = true
		}
	}
	for _, step := range s {
		if kept[step] {
			keep = append(keep, step)
		} else {
			drop = append(drop, step)
		}
	}
	return keep, drop
}

// Prune deletes the checkpoints under root that Select drops, and leftovers
// of interrupted saves, and returns the steps deleted.
func (r Retention) Prune(root string) ([]int, error) {
	saved, err := ListCheckpoints(root)
	if err != nil {
		return nil, err
	}
	_, drop := r.Select(saved)
	for _, step := range drop {
		if err := os.RemoveAll(CheckpointDir(root, step)); err != nil {
			return nil, fmt.Errorf("grpo: removing checkpoint %d: %w", step, err)
		}
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return drop, fmt.Errorf("grpo: checkpoints: %w", err)
	}
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() && strings.HasPrefix(n, "."+CheckpointPrefix) && (strings.Contains(n, ".tmp-") || strings.Contains(n, ".old-")) {
			if err := os.RemoveAll(filepath.Join(root, n)); err != nil {
				return drop, fmt.Errorf("grpo: removing %s: %w", n, err)
			}
		}
	}
	return drop, nil
}
