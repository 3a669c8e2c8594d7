package engine

import (
	"context"
	"testing"
)

func TestGreedyTiny(t *testing.T) {
	m, ref := loadTiny(t)
	want, ws := ref.ints(t, "greedy_ids")
	var reqs []Request
	ps, err := Prompts(m.Config, ref.batch(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		reqs = append(reqs, Request{Prompt: p, N: 1, Sampling: Sampling{MaxNewTokens: ws[1], IgnoreEOS: true}})
	}
	got, err := m.Generate(context.Background(), reqs, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range ws[0] {
		for j := range ws[1] {
			if int64(got[i].IDs[j]) != want[i*ws[1]+j] {
				t.Fatalf("greedy ids row %d = %v, want %v", i, got[i].IDs, want[i*ws[1]:(i+1)*ws[1]])
			}
		}
		if got[i].Finish != FinishLength {
			t.Errorf("row %d finished by %q, want length", i, got[i].Finish)
		}
	}
}
