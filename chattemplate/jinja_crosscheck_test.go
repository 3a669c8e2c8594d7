package chattemplate

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"strings"
	"testing"

	"github.com/ardanlabs/jinja"
)

// TestMatchesJinjaEngine renders random conversations with the native
// renderer and with an independent Jinja engine (github.com/ardanlabs/jinja)
// running the real template text, and requires identical output. The
// messages go through JSON, as Hugging Face's would, so that the engine sees
// the same dicts (key presence included) as transformers' Jinja does.
func TestMatchesJinjaEngine(t *testing.T) {
	engine, err := jinja.Compile(Qwen2VLTemplate)
	if err != nil {
		t.Fatalf("jinja.Compile: %v", err)
	}
	native := qwen(t)
	rng := rand.New(rand.NewSource(7))
	texts := []string{"", "Hi", " lead", "trail ", "multi\nline\n", "<think>", "数字 2022", "{{ not a tag }}", "{% raw %}", "😀"}
	roles := []string{"system", "user", "assistant", "tool"}
	parts := []string{
		`{"type":"text","text":%q}`, `{"type":"image"}`, `{"image":"file:///a.png"}`, `{"type":"image_url","image_url":{"url":"http://x/y.png"}}`,
		`{"type":"video"}`, `{"video":["f1.png","f2.png"]}`, `{"type":"text"}`, `{"type":"audio","text":%q}`, `{"text":%q}`,
	}
	n := 3000
	if testing.Short() {
		n = 300
	}
	for i := 0; i < n; i++ {
		var msgs []string
		for m := rng.Intn(5); m >= 0; m-- {
			role := roles[rng.Intn(len(roles))]
			if rng.Intn(2) == 0 {
				msgs = append(msgs, fmt.Sprintf(`{"role":%q,"content":%q}`, role, texts[rng.Intn(len(texts))]))
				continue
			}
			var ps []string
			for p := rng.Intn(4); p >= 0; p-- {
				f := parts[rng.Intn(len(parts))]
				if strings.Contains(f, "%q") {
					f = fmt.Sprintf(f, texts[rng.Intn(len(texts))])
				}
				ps = append(ps, f)
			}
			msgs = append(msgs, fmt.Sprintf(`{"role":%q,"content":[%s]}`, role, strings.Join(ps, ",")))
		}
		doc := "[" + strings.Join(msgs, ",") + "]"
		var typed []Message
		var generic []any
		if err := json.Unmarshal([]byte(doc), &typed); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(doc), &generic); err != nil {
			t.Fatal(err)
		}
		opts := Options{AddGenerationPrompt: rng.Intn(2) == 0, AddVisionID: rng.Intn(3) == 0}
		want, err := engine.Render(map[string]any{"messages": generic, "add_generation_prompt": opts.AddGenerationPrompt, "add_vision_id": opts.AddVisionID})
		if err != nil {
			t.Fatalf("jinja on %s: %v", doc, err)
		}
		got, err := native.Render(typed, opts)
		if err != nil {
			t.Fatalf("native on %s: %v", doc, err)
		}
		if got != want {
			t.Fatalf("messages %s opts %+v:\n native %q\n jinja  %q", doc, opts, got, want)
		}
	}
}
