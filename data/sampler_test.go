package data

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"sort"
	"testing"
)

func collect(t *testing.T, s *Sampler, epoch int) []Sample {
	t.Helper()
	var out []Sample
	for smp, err := range s.Epoch(context.Background(), epoch, nil) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, smp)
	}
	return out
}

func keys(ss []Sample) []string {
	k := make([]string, len(ss))
	for i, s := range ss {
		k[i] = fmt.Sprintf("%s/%d", s.DocID, s.PairIndex)
	}
	return k
}

func TestSamplerFixture(t *testing.T) {
	dir, _ := loadExpected(t)
	ctx := context.Background()
	ds, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]Row{}
	var order []string
	for r, err := range ds.Rows(ctx, "train", nil) {
		if err != nil {
			t.Fatal(err)
		}
		rows[r.DocID] = r
		order = append(order, r.DocID)
	}

	one, err := NewSampler(ds, "train", SamplerOptions{Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	e0 := collect(t, one, 0)
	if again := collect(t, one, 0); !reflect.DeepEqual(keys(e0), keys(again)) {
		t.Errorf("same seed and epoch gave %v then %v", keys(e0), keys(again))
	}
	pairsSeen := map[string]map[int]bool{}
	orders := map[string]bool{}
	for epoch := range 12 {
		got := collect(t, one, epoch)
		var ids []string
		for _, s := range got {
			ids = append(ids, s.DocID)
			r := rows[s.DocID]
			if s.Question != r.QA[s.PairIndex].Question || s.Answer != r.QA[s.PairIndex].Answer ||
				s.Content != r.Content || len(s.Image) != len(r.Image) || s.Width != r.Width ||
				s.Height != r.Height || s.Format != r.Format || s.Format == "" {
				t.Fatalf("sample %+v does not match its row", s)
			}
			if pairsSeen[s.DocID] == nil {
				pairsSeen[s.DocID] = map[int]bool{}
			}
			pairsSeen[s.DocID][s.PairIndex] = true
		}
		orders[fmt.Sprint(ids)] = true
		sort.Strings(ids)
		want := append([]string(nil), order...)
		sort.Strings(want)
		if !reflect.DeepEqual(ids, want) {
			t.Fatalf("epoch %d visits %v, want each image once: %v", epoch, ids, want)
		}
	}
	if len(orders) < 10 {
		t.Errorf("12 epochs gave only %d distinct orders", len(orders))
	}
	for id, seen := range pairsSeen {
		if len(seen) < 2 {
			t.Errorf("%s: the same pair was chosen in all 12 epochs", id)
		}
	}
	other, _ := NewSampler(ds, "train", SamplerOptions{Seed: 8})
	if reflect.DeepEqual(keys(collect(t, other, 0)), keys(e0)) {
		t.Errorf("seeds 7 and 8 gave the same epoch")
	}

	all, _ := NewSampler(ds, "train", SamplerOptions{Policy: AllPairs, Seed: 1})
	got := keys(collect(t, all, 3))
	var want []string
	for _, id := range order {
		for i := range rows[id].QA {
			want = append(want, fmt.Sprintf("%s/%d", id, i))
		}
	}
	if len(want) != 35 {
		t.Fatalf("fixture has %d pairs, want 35", len(want))
	}
	inOrder, _ := NewSampler(ds, "train", SamplerOptions{Policy: AllPairs, NoShuffle: true})
	if g := keys(collect(t, inOrder, 0)); !reflect.DeepEqual(g, want) {
		t.Errorf("NoShuffle all pairs: %v, want %v", g, want)
	}
	sort.Strings(got)
	sort.Strings(want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("all pairs: %v, want %v", got, want)
	}

	if n, err := one.Len(ctx); err != nil || n != 8 {
		t.Errorf("one pair per image: Len = %d, %v; want 8", n, err)
	}
	if n, err := all.Len(ctx); err != nil || n != 35 {
		t.Errorf("all pairs: Len = %d, %v; want 35", n, err)
	}
	if _, err := NewSampler(ds, "nope", SamplerOptions{}); err == nil {
		t.Error("unknown split accepted")
	}
	if _, err := ParsePolicy("some"); err == nil {
		t.Error("unknown policy accepted")
	}
	if p, err := ParsePolicy(AllPairs.String()); err != nil || p != AllPairs {
		t.Errorf("ParsePolicy(%q) = %v, %v", AllPairs, p, err)
	}
}

// TestSamplerMixesRowGroups checks that the stream is not a sequence of whole
// row groups, and that stopping early works.
func TestSamplerMixesRowGroups(t *testing.T) {
	dir := t.TempDir()
	img := pngBytes(t, 28, 28)
	for shard := range 2 {
		var rows []sujetRow
		for i := range 100 {
			rows = append(rows, sujetRow{DocID: fmt.Sprintf("s%d_%03d", shard, i), Image: &hfImage{Bytes: img},
				QAPairs: `[{'question': 'q', 'answer': 'a'}]`})
		}
		writeParquet(t, filepath.Join(dir, fmt.Sprintf("train-%05d-of-00002.parquet", shard)), rows, 10)
	}
	ds, err := Open(context.Background(), dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := NewSampler(ds, "train", SamplerOptions{Seed: 3, ShuffleBuffer: 32})
	got := collect(t, s, 0)
	if len(got) != 200 {
		t.Fatalf("%d samples, want 200", len(got))
	}
	groups := map[string]bool{}
	for _, smp := range got[:20] {
		groups[smp.DocID[:5]] = true // shard and row group: "s0_08" is rows 80-89 of shard 0
	}
	if len(groups) < 4 {
		t.Errorf("the first 20 samples come from only %d row groups: %v", len(groups), keys(got[:20]))
	}
	n := 0
	for _, err := range s.Epoch(context.Background(), 1, nil) {
		if err != nil {
			t.Fatal(err)
		}
		n++
		if n == 5 {
			break
		}
	}
	if n != 5 {
		t.Errorf("early stop: %d", n)
	}
}
