package grpo

import (
	"math"
	"sync"
	"testing"

	"github.com/gomlx/gomlx/backends"

	"github.com/mmft-go/mmft/compute"
	"github.com/mmft-go/mmft/internal/shared"
)

var (
	backendOnce sync.Once
	backend     backends.Backend
	backendErr  error
)

// cpu returns the pure-Go backend (opened with a safe parallelism by compute).
func cpu(t testing.TB) backends.Backend {
	t.Helper()
	backendOnce.Do(func() {
		b, err := compute.NewCPU()
		if err == nil {
			backend = b.Backend
		}
		backendErr = err
	})
	if backendErr != nil {
		t.Fatal(backendErr)
	}
	return backend
}

// relClose reports whether got is within rel of want, relative to max(|want|, floor).
func relClose(got, want, rel, floor float64) bool {
	return math.Abs(got-want) <= rel*math.Max(math.Abs(want), floor)
}

// Every fixture case (PyTorch autograd): advantages, loss and d loss / d new_logps within 1e-5 relative.
func TestLossFixture(t *testing.T) {
	cases, err := ReadLossCases(shared.Fixture(t, "grpo", "loss_cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i := range cases {
		c := &cases[i]
		seen[c.LossType] = true
		adv, err := Advantages(c.Rewards, c.GroupSize, ScaleGroup)
		if err != nil {
			t.Fatal(err)
		}
		for k, want := range c.Advantages {
			if !relClose(float64(adv.Advantages[k]), want, 1e-5, 1e-3) {
				t.Errorf("case %d (%s): advantage %d = %v, want %v", i, c.LossType, k, adv.Advantages[k], want)
			}
		}
		res, err := RunLossCase(cpu(t), c)
		if err != nil {
			t.Fatal(err)
		}
		if c.Loss == nil || !relClose(res.Loss, *c.Loss, 1e-5, 0) {
			t.Errorf("case %d (%s): loss %.9g, want %v", i, c.LossType, res.Loss, c.Loss)
		}
		// Gradients: 1e-5 relative to the largest gradient of the case (entries
		// near zero are compared against that scale, not their own).
		scale := 0.0
		for _, row := range c.GradNewLogps {
			for _, g := range row {
				scale = math.Max(scale, math.Abs(g))
			}
		}
		worst := 0.0
		for r, row := range c.GradNewLogps {
			for k, want := range row {
				got := res.GradNewLogps[r][k]
				worst = math.Max(worst, math.Abs(got-want)/math.Max(math.Abs(want), 1e-3*scale))
				if !relClose(got, want, 1e-5, 1e-3*scale) {
					t.Errorf("case %d (%s): grad[%d][%d] = %.9g, want %.9g", i, c.LossType, r, k, got, want)
				}
			}
		}
		t.Logf("case %d %-7s loss %.9g (want %.9g), worst relative gradient error %.2g", i, c.LossType, res.Loss, *c.Loss, worst)
	}
	for _, lt := range LossTypes {
		if !seen[lt] {
			t.Logf("the fixture has no %s case", lt)
		}
	}
}
