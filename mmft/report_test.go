package mmft

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mmft-go/mmft/grpo"
)

// TestReportSummarizesTheRewardCurve checks the report's reward figures
// (start, peak, end as means over the smoothing window) on a known curve,
// and that the report and both charts are written.
func TestReportSummarizesTheRewardCurve(t *testing.T) {
	// 32 steps: 4 steps at −0.5, then +0.2 per step up to 1.5, then 1.0 from step 25.
	var h []grpo.Metrics
	for i := range 32 {
		r := -0.5
		switch {
		case i >= 24:
			r = 1.0
		case i >= 4:
			r = min(1.5, -0.5+0.2*float64(i-3))
		}
		h = append(h, grpo.Metrics{"step": grpo.Float(i + 1), "reward": grpo.Float(r), "reward/structural": grpo.Float(r), "step_s": 2, "kl": 0.1, "completion_length": 8})
	}
	rs := SummarizeReward(h, "reward")
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-6 }
	if rs.Window != 4 || !near(rs.Start, -0.5) || !near(rs.End, 1.0) || !near(rs.Rise, 1.5) || !near(rs.Peak, 1.5) || rs.PeakStep != 17 {
		t.Errorf("summary %+v; want window 4, start −0.5, peak 1.5 at step 17 (the first best window), end 1.0, rise 1.5", rs)
	}
	ma := MovingAverage(Series(h, "reward", "r"), 4, "ma")
	if !near(ma.Y[0], -0.5) || !near(ma.Y[5], (-0.5-0.5-0.3-0.1)/4) {
		t.Errorf("moving average starts %v", ma.Y[:6])
	}
	dir := t.TempDir()
	cfg := EmbeddedTrainConfig()
	if err := WriteReport(dir, cfg, h); err != nil {
		t.Fatal(err)
	}
	rep, err := os.ReadFile(filepath.Join(dir, ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"reward/structural (mean of 4 steps): start -0.500, peak 1.500 (steps 14–17), end 1.000; +1.500", "Training time: 64 s"} {
		if !strings.Contains(string(rep), want) {
			t.Errorf("the report lacks %q:\n%s", want, rep)
		}
	}
	for _, f := range []string{RewardChart, CurvesChart} {
		if b, err := os.ReadFile(filepath.Join(dir, f)); err != nil || !strings.Contains(string(b), "<svg") {
			t.Errorf("%s: %v (%d bytes)", f, err, len(b))
		}
	}
}
