package distributed

import (
	"slices"
	"strings"
	"testing"
)

func TestDefaultLayout(t *testing.T) {
	for _, c := range []struct {
		n              int
		rollout, train []int
		colocated      bool
	}{
		{1, []int{0}, []int{0}, true},
		{2, []int{1}, []int{0}, false},
		{4, []int{3}, []int{0, 1, 2}, false},
		{8, []int{7}, []int{0, 1, 2, 3, 4, 5, 6}, false},
	} {
		l, err := DefaultLayout(c.n)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(l.Rollout, c.rollout) || !slices.Equal(l.Train, c.train) || l.Colocated() != c.colocated || l.GPUs != c.n {
			t.Errorf("DefaultLayout(%d) = %+v (colocated %v)", c.n, l, l.Colocated())
		}
	}
	if _, err := DefaultLayout(0); err == nil || !strings.Contains(err.Error(), "0 GPUs") {
		t.Errorf("no GPU: error %v", err)
	}
}

func TestNewLayoutFlags(t *testing.T) {
	for _, c := range []struct {
		rollout, train string
		n              int
		wantR, wantT   []int
	}{
		{"", "", 4, []int{3}, []int{0, 1, 2}},
		{"0", "1,2,3", 4, []int{0}, []int{1, 2, 3}},
		{"0", "1-3", 4, []int{0}, []int{1, 2, 3}},
		{"0", "", 4, []int{0}, []int{1, 2, 3}},   // train: what rollout leaves
		{"", "0,1", 4, []int{2, 3}, []int{0, 1}}, // rollout: what train leaves
		{"0", "", 1, []int{0}, []int{0}},         // one GPU named: colocated
		{"", "0", 1, []int{0}, []int{0}},
		{"2", "2", 4, []int{2}, []int{2}}, // the same single GPU: colocated
		{" 3 ", "0, 1 ,2", 4, []int{3}, []int{0, 1, 2}},
	} {
		l, err := NewLayout(c.rollout, c.train, c.n)
		if err != nil {
			t.Errorf("NewLayout(%q, %q, %d): %v", c.rollout, c.train, c.n, err)
			continue
		}
		if !slices.Equal(l.Rollout, c.wantR) || !slices.Equal(l.Train, c.wantT) {
			t.Errorf("NewLayout(%q, %q, %d) = rollout %v train %v, want %v %v", c.rollout, c.train, c.n, l.Rollout, l.Train, c.wantR, c.wantT)
		}
	}
	for _, c := range []struct {
		rollout, train string
		n              int
		want           string
	}{
		{"0", "0,1", 4, "GPU 0 is in both"},
		{"1", "0-2", 4, "GPU 1 is in both"},
		{"4", "", 4, "GPU 4 is out of range: 4 GPU(s) found"},
		{"", "0,-1", 4, "is not a GPU number"},
		{"", "0,0", 4, "GPU 0 is listed twice"},
		{"", "a", 4, `"a" is not a GPU number`},
		{"", "3-1", 4, "not a range"},
		{"", "0,", 4, "is not a GPU number"},
		{"", "0-3", 4, "takes all 4 GPUs: give --rollout-gpus"},
		{"0-1", "", 2, "takes all 2 GPUs: give --train-gpus"},
		{"0", "", 0, "0 GPUs found"},
	} {
		_, err := NewLayout(c.rollout, c.train, c.n)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewLayout(%q, %q, %d): error %v, want one containing %q", c.rollout, c.train, c.n, err, c.want)
		}
	}
	// Errors name the flag.
	if _, err := NewLayout("9", "", 4); err == nil || !strings.Contains(err.Error(), "--rollout-gpus") {
		t.Errorf("error %v does not name --rollout-gpus", err)
	}
}

// TestFlagsCheckAndStaleness checks what the flags say on their own (before
// the devices are known) and the staleness rules of Flags.Layout.
func TestFlagsCheckAndStaleness(t *testing.T) {
	for _, c := range []struct {
		f    Flags
		want string // "" = accepted
	}{
		{Flags{}, ""},
		{Flags{RolloutGPUs: "7", TrainGPUs: "0-6"}, ""},
		{Flags{RolloutGPUs: "0", TrainGPUs: "0"}, ""},
		{Flags{RolloutGPUs: "2", TrainGPUs: "0-3"}, "GPU 2 is in both"},
		{Flags{TrainGPUs: "0,,1"}, "is not a GPU number"},
		{Flags{TrainGPUs: "5000"}, "out of range"},
		{Flags{MaxStaleness: -1}, "--max-staleness -1"},
	} {
		err := c.f.Check()
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v: %v, want %q", c.f, err, c.want)
		}
	}
	if _, err := (&Flags{MaxStaleness: 1}).Layout(1); err == nil || !strings.Contains(err.Error(), "needs the split layout") {
		t.Errorf("staleness on one GPU: %v", err)
	}
	l, err := (&Flags{MaxStaleness: 1}).Layout(4)
	if err != nil || l.Colocated() {
		t.Errorf("staleness 1 on 4 GPUs: %v, %v", l, err)
	}
	if err := (Layout{Rollout: []int{2, 3}, Train: []int{0, 1}}).CheckRollout(); err == nil || !strings.Contains(err.Error(), "runs on one GPU") {
		t.Errorf("two rollout GPUs: %v", err)
	}
}
