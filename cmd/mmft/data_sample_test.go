package main

import (
	"bytes"
	"encoding/json"
	"image"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mmft-go/mmft/internal/shared"
)

func TestDataSampleCommand(t *testing.T) {
	dir := shared.Fixture(t, "sujet-parquet")
	out := t.TempDir()
	code, stdout, errOut := runCLI(t, "", "data", "sample", dir, "--n", "2", "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"doc_00100  320x240 png", "Q1: What was the revenue in Q1?", "A1: $23M",
		`Which quarter is labelled "Q3"?`, "doc_00101  360x270 jpeg"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "<image>") {
		t.Errorf("<image> not stripped:\n%s", stdout)
	}
	for _, name := range []string{"doc_00100.png", "doc_00101.jpg"} {
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := image.Decode(bytes.NewReader(b)); err != nil {
			t.Errorf("%s: saved image does not decode: %v", name, err)
		}
	}

	// All 8 good rows of train, past the bad ones, reported on stderr.
	code, stdout, errOut = runCLI(t, "", "data", "sample", dir, "--n", "20", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var recs []sampleRecord
	if err := json.Unmarshal([]byte(stdout), &recs); err != nil {
		t.Fatal(err)
	}
	if len(recs) != 8 || !strings.Contains(errOut, "only 8 good rows") || !strings.Contains(errOut, "null_image") {
		t.Errorf("%d records; stderr %s", len(recs), errOut)
	}

	// --random: the sampler's one pair per image, reproducible by seed.
	_, a, _ := runCLI(t, "", "data", "sample", dir, "--random", "--seed", "5", "--n", "3", "--split", "test", "--json")
	_, b, _ := runCLI(t, "", "data", "sample", dir, "--random", "--seed", "5", "--n", "3", "--split", "test", "--json")
	if err := json.Unmarshal([]byte(a), &recs); err != nil || len(recs) != 3 || a != b {
		t.Errorf("random sample: %v %d\n%s\n%s", err, len(recs), a, b)
	}
	for _, r := range recs {
		if len(r.QA) != 1 || r.Format == "" {
			t.Errorf("random record %+v", r)
		}
	}
}

func TestDataSampleErrors(t *testing.T) {
	dir := shared.Fixture(t, "sujet-parquet")
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"data", "sample"}, 2, "want one dataset"},
		{[]string{"data", "sample", dir, "--n", "0"}, 2, "--n must be at least 1"},
		{[]string{"data", "sample", dir, "--split", "dev"}, 1, `no split "dev"`},
	} {
		code, _, errOut := runCLI(t, "", c.args...)
		if code != c.code || !strings.Contains(errOut, c.msg) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", c.args, code, errOut, c.code, c.msg)
		}
	}
	if got := safeFileName("../a/b c"); got != "_a_b_c" {
		t.Errorf("safeFileName = %q", got)
	}
}
