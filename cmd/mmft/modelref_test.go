package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mmft-go/mmft/internal/shared"
)

// TestModelFlagTakesHubID checks that --model accepts a Hub repository id
// resolved from a Hugging Face cache (offline), as Python's huggingface_hub lays it out.
func TestModelFlagTakesHubID(t *testing.T) {
	assets := shared.Asset(t)
	home := t.TempDir()
	repo := filepath.Join(home, "hub", "models--Qwen--Qwen2-VL-2B-Instruct")
	const commit = "0123456789abcdef0123456789abcdef01234567"
	snap := filepath.Join(repo, "snapshots", commit)
	if err := os.MkdirAll(snap, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(repo, "refs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "refs", "main"), []byte(commit), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"vocab.json", "merges.txt", "tokenizer_config.json", "chat_template.json", "preprocessor_config.json", "config.json"} {
		if err := os.Symlink(filepath.Join(assets, f), filepath.Join(snap, f)); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("HF_HOME", home)
	t.Setenv("HF_HUB_CACHE", "")
	t.Setenv("HF_HUB_OFFLINE", "1")
	code, out, errOut := runCLI(t, `{"text":"Hello world"}`+"\n", "tokenize", "--model", "Qwen/Qwen2-VL-2B-Instruct")
	if code != 0 || !strings.Contains(out, `"ids":[9707,1879]`) {
		t.Fatalf("tokenize with a Hub id: exit %d, out %q, err %q", code, out, errOut)
	}
	code, _, errOut = runCLI(t, "", "tokenize", "--model", "Qwen/Not-Cached")
	if code != 1 || !strings.Contains(errOut, "offline") {
		t.Fatalf("uncached Hub id offline: exit %d, err %q", code, errOut)
	}
}
