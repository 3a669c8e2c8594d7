package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mmft-go/mmft/data"
)

func TestDataSynthCommand(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	c := &cli{ctx: context.Background(), stdin: strings.NewReader(""), stdout: &out, stderr: &errb}
	if code := c.main([]string{"data", "synth", "--out", dir, "--n", "6", "--test", "2", "--seed", "4", "--level", "easy", "--row-group", "4"}); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "wrote 6 training and 2 test documents") {
		t.Errorf("stdout %q", out.String())
	}
	ds, err := data.Open(context.Background(), dir, data.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for split, n := range map[string]int{"train": 6, "test": 2} {
		var rep data.Report
		got := 0
		for _, err := range ds.Rows(context.Background(), split, &rep) {
			if err != nil {
				t.Fatal(err)
			}
			got++
		}
		if got != n || rep.BadRows() != 0 {
			t.Errorf("%s: %d good rows, %d bad; want %d", split, got, rep.BadRows(), n)
		}
	}
	// Same flags, same bytes.
	dir2 := t.TempDir()
	c.main([]string{"data", "synth", "--out", dir2, "--n", "6", "--test", "2", "--seed", "4", "--level", "easy", "--row-group", "4"})
	a, _ := os.ReadFile(filepath.Join(dir, "data", "train-00000-of-00001.parquet"))
	b, _ := os.ReadFile(filepath.Join(dir2, "data", "train-00000-of-00001.parquet"))
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Error("the same flags gave different files")
	}
}

func TestDataSynthCommandErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"--n", "3"}, 2, "--out is required"},
		{[]string{"--out", t.TempDir()}, 2, "--n 0: give a number of training documents from 1 to 10000000"},
		{[]string{"--out", t.TempDir(), "--n", "9223372036854775807"}, 2, "from 1 to 10000000"},
		{[]string{"--out", t.TempDir(), "--n", "10", "--test", "20000000"}, 2, "--test 20000000: the most is 10000000"},
		{[]string{"--out", t.TempDir(), "--n", "10000000", "--width", "4096", "--height", "4096"}, 1, "11000000 documents of 4096×4096 would take about 62.9 TiB on disk"},
		{[]string{"--out", t.TempDir(), "--n", "20000", "--row-group", "1000000000", "--width", "4096", "--height", "4096"}, 1, "not enough memory: a row group of 20000 documents of 4096×4096 would take about 937.5 GiB"},
		{[]string{"--out", t.TempDir(), "--n", "2", "--level", "hard"}, 2, "use normal or easy"},
		{[]string{"--out", t.TempDir(), "--n", "2", "--width", "300"}, 2, "both --width and --height"},
		{[]string{"--out", t.TempDir(), "--n", "2", "--width", "50", "--height", "50"}, 1, "too small to be legible"},
	} {
		var out, errb bytes.Buffer
		code := (&cli{ctx: context.Background(), stdin: strings.NewReader(""), stdout: &out, stderr: &errb}).main(append([]string{"data", "synth"}, c.args...))
		if code != c.code || !strings.Contains(errb.String(), c.msg) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", c.args, code, errb.String(), c.code, c.msg)
		}
	}
}
