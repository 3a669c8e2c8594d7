package grpo

import (
	"math"
	"strings"
	"testing"
)

func TestSchedules(t *testing.T) {
	near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-12*math.Max(1e-6, math.Abs(b)) }
	mustSchedule := func(c ScheduleConfig, total int) Schedule {
		t.Helper()
		s, err := NewSchedule(c, total)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, c := range []struct {
		name  string
		s     Schedule
		steps map[int]float64
	}{
		// The seed: LinearLR from 5e-6 to 1e-6 over 100 steps.
		{"seed linear", mustSchedule(ScheduleConfig{Kind: "linear", LearningRate: 5e-6, LastLearningRate: 1e-6}, 100),
			map[int]float64{0: 5e-6, 1: 4.96e-6, 50: 3e-6, 99: 1.04e-6, 100: 1e-6, 150: 1e-6}},
		{"linear with warm-up", mustSchedule(ScheduleConfig{Kind: "linear", LearningRate: 1e-3, LastLearningRate: 0, WarmupSteps: 10}, 110),
			map[int]float64{0: 0, 5: 5e-4, 9: 9e-4, 10: 1e-3, 60: 5e-4, 110: 0, 200: 0}},
		{"constant", mustSchedule(ScheduleConfig{Kind: "constant", LearningRate: 2e-5, LastLearningRate: 1}, 10),
			map[int]float64{0: 2e-5, 9: 2e-5, 10: 2e-5, 1000: 2e-5}},
		{"constant with warm-up", mustSchedule(ScheduleConfig{Kind: "constant", LearningRate: 2e-5, WarmupSteps: 4}, 10),
			map[int]float64{0: 0, 1: 5e-6, 3: 1.5e-5, 4: 2e-5, 10: 2e-5}},
		{"cosine with warm-up", mustSchedule(ScheduleConfig{Kind: "cosine", LearningRate: 1e-4, LastLearningRate: 1e-5, WarmupSteps: 2}, 12),
			map[int]float64{0: 0, 1: 5e-5, 2: 1e-4, 7: 5.5e-5, 12: 1e-5, 13: 1e-5}},
		{"warm-up is the whole run", mustSchedule(ScheduleConfig{Kind: "cosine", LearningRate: 1e-4, WarmupSteps: 5}, 5),
			map[int]float64{0: 0, 4: 8e-5, 5: 0}},
	} {
		for step, want := range c.steps {
			if got := c.s(step); !near(got, want) {
				t.Errorf("%s: step %d: lr %v, want %v", c.name, step, got, want)
			}
		}
	}
	// Cosine never rises after warm-up.
	cos := Cosine(1, 0.1, 0, 50)
	for s := 1; s <= 50; s++ {
		if cos(s) > cos(s-1) {
			t.Fatalf("cosine rises at step %d", s)
		}
	}
	for _, c := range []struct {
		cfg   ScheduleConfig
		total int
		want  string
	}{
		{ScheduleConfig{Kind: "step", LearningRate: 1}, 10, "lr_scheduler_type"},
		{ScheduleConfig{Kind: "linear", LearningRate: 0}, 10, "learning_rate (--lr)"},
		{ScheduleConfig{Kind: "linear", LearningRate: 1, LastLearningRate: -1}, 10, "last_learning_rate (--last_lr)"},
		{ScheduleConfig{Kind: "linear", LearningRate: 1, WarmupSteps: -1}, 10, "warmup_steps"},
		{ScheduleConfig{Kind: "linear", LearningRate: 1, WarmupSteps: 11}, 10, "longer than the run"},
		{ScheduleConfig{Kind: "linear", LearningRate: 1}, 0, "total steps"},
	} {
		if _, err := NewSchedule(c.cfg, c.total); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewSchedule(%+v, %d) = %v, want an error with %q", c.cfg, c.total, err, c.want)
		}
	}
}
