package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mmft-go/mmft/data"
	"github.com/mmft-go/mmft/internal/shared"
)

func TestDataInspectCommand(t *testing.T) {
	dir := shared.Fixture(t, "sujet-parquet")
	code, out, errOut := runCLI(t, "", "data", "inspect", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"split train: 1 file", "12 rows: 8 good with 35 QA pairs, 4 skipped", "4 row groups",
		"split test: 1 file", "3 rows: 3 good with 13 QA pairs, 0 skipped",
		"image tokens (min_pixels 3136, max_pixels 12845056)", "image formats: jpeg 4, png 4",
		"bad_image", "bad_qa", "null_image", "empty_qa", "string is never closed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	// Flags after the path, JSON output, one split, other pixel bounds.
	code, out, errOut = runCLI(t, "", "data", "inspect", dir, "--json", "--split", "train", "--max-pixels", "7840")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var sum data.Summary
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if len(sum.Splits) != 1 || sum.Splits[0].Report.Good != 8 || sum.Splits[0].Report.Count(data.BadQA) != 1 ||
		sum.MaxPixels != 7840 || sum.Splits[0].ImageTokens.Max > 10 {
		t.Errorf("JSON summary %+v", sum)
	}
}

// TestDataInspectHubID reads a dataset id from a Hugging Face cache, offline.
func TestDataInspectHubID(t *testing.T) {
	src := shared.Fixture(t, "sujet-parquet", "data", "test-00000-of-00001.parquet")
	cache := t.TempDir()
	repo := filepath.Join(cache, "datasets--fixture-org--sujet-mini")
	snap := filepath.Join(repo, "snapshots", "0123456789abcdef0123456789abcdef01234567")
	if err := os.MkdirAll(filepath.Join(snap, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(snap, "data", "test-00000-of-00001.parquet"), b, 0o644)
	os.MkdirAll(filepath.Join(repo, "refs"), 0o755)
	os.WriteFile(filepath.Join(repo, "refs", "main"), []byte("0123456789abcdef0123456789abcdef01234567"), 0o644)
	t.Setenv("HF_HUB_CACHE", cache)
	t.Setenv("HF_HUB_OFFLINE", "1")
	code, out, errOut := runCLI(t, "", "data", "inspect", "fixture-org/sujet-mini", "--offline", "--quiet")
	if code != 0 || !strings.Contains(out, "3 rows: 3 good with 13 QA pairs") {
		t.Errorf("exit %d\n%s\n%s", code, out, errOut)
	}
}

func TestDataInspectErrors(t *testing.T) {
	cases := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"data", "inspect"}, 2, "want one dataset"},
		{[]string{"data", "inspect", "a", "b"}, 2, "want one dataset"},
		{[]string{"data", "inspect", "a", "--json", "b"}, 2, "got 2 arguments"},
		{[]string{"data", "inspect", "--bogus", "x"}, 2, "bogus"},
		{[]string{"data", "inspect", filepath.Join(t.TempDir(), "missing")}, 1, "does not exist"},
		{[]string{"data", "inspect", t.TempDir()}, 1, "no .parquet files"},
	}
	for _, c := range cases {
		code, _, errOut := runCLI(t, "", c.args...)
		if code != c.code || !strings.Contains(errOut, c.msg) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", c.args, code, errOut, c.code, c.msg)
		}
	}
	dir := shared.Fixture(t, "sujet-parquet")
	code, _, errOut := runCLI(t, "", "data", "inspect", dir, "--split", "dev")
	if code != 1 || !strings.Contains(errOut, `no split "dev"`) || !strings.Contains(errOut, "test, train") {
		t.Errorf("unknown split: exit %d %q", code, errOut)
	}
	code, _, errOut = runCLI(t, "", "data", "inspect", dir, "--min-pixels", "9000", "--max-pixels", "100")
	if code != 1 || !strings.Contains(errOut, "min_pixels") {
		t.Errorf("bad pixel bounds: exit %d %q", code, errOut)
	}
	code, out, _ := runCLI(t, "", "data", "inspect", "--help")
	if code != 0 || !strings.Contains(out, "Usage: mmft data inspect") {
		t.Errorf("help: %d %q", code, out)
	}
}
