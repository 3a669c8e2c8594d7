package chattemplate

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mmft-go/mmft/internal/shared"
	"github.com/mmft-go/mmft/tokenizer"
)

type fixtureCase struct {
	Messages             []Message `json:"messages"`
	ContinueFinalMessage bool      `json:"continue_final_message"`
	Rendered             string    `json:"rendered"`
	IDs                  []int     `json:"ids"`
}

func TestFixtureChatTemplateCase(t *testing.T) {
	dir := shared.Asset(t)
	data, err := os.ReadFile(shared.Fixture(t, "tokenizer", "chat_template_case.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c fixtureCase
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	tmpl, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := tmpl.Render(c.Messages, Options{ContinueFinalMessage: c.ContinueFinalMessage})
	if err != nil {
		t.Fatal(err)
	}
	if got != c.Rendered {
		t.Fatalf("rendered:\n%q\nwant:\n%q", got, c.Rendered)
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if ids := tok.Encode(got); !reflect.DeepEqual(ids, c.IDs) {
		t.Fatalf("ids of the rendered text:\n%v\nwant\n%v", ids, c.IDs)
	}
	// The same conversation built with the Go helpers renders the same.
	msgs := []Message{
		System(c.Messages[0].Content[0].Text),
		User(Image(), Text("What is the net income for 2022?")),
		Assistant("Let me solve this step by step.\n<think>"),
	}
	if got2, err := tmpl.Render(msgs, Options{ContinueFinalMessage: true}); err != nil || got2 != c.Rendered {
		t.Fatalf("helpers: %q, %v", got2, err)
	}
}

func qwen(t *testing.T) *Template {
	t.Helper()
	tmpl, err := Parse(Qwen2VLTemplate)
	if err != nil {
		t.Fatal(err)
	}
	return tmpl
}

// Expected strings below follow the Jinja template by hand.
func TestRenderCases(t *testing.T) {
	tmpl := qwen(t)
	sys := "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
	cases := []struct {
		name string
		json string
		opts Options
		want string
	}{
		{"default system, generation prompt", `[{"role":"user","content":"Hi"}]`, Options{AddGenerationPrompt: true},
			sys + "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"},
		{"no generation prompt", `[{"role":"user","content":"Hi"}]`, Options{},
			sys + "<|im_start|>user\nHi<|im_end|>\n"},
		{"own system", `[{"role":"system","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"a"},{"type":"image"},{"type":"text","text":"b"}]}]`, Options{},
			"<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\na<|vision_start|><|image_pad|><|vision_end|>b<|im_end|>\n"},
		{"image by key, image_url, video, vision ids", `[{"role":"user","content":[{"image":"file:///x.png"},{"type":"image_url","image_url":{"url":"http://x/y.png"}},{"type":"video","video":["a.png","b.png"]},{"type":"text","text":"?"}]}]`, Options{AddVisionID: true, AddGenerationPrompt: true},
			sys + "<|im_start|>user\nPicture 1: <|vision_start|><|image_pad|><|vision_end|>Picture 2: <|vision_start|><|image_pad|><|vision_end|>Video 1: <|vision_start|><|video_pad|><|vision_end|>?<|im_end|>\n<|im_start|>assistant\n"},
		{"part without text key renders nothing", `[{"role":"user","content":[{"type":"text"},{"type":"audio","text":"t"}]}]`, Options{},
			sys + "<|im_start|>user\nt<|im_end|>\n"},
		{"system not first", `[{"role":"user","content":"a"},{"role":"system","content":"s"}]`, Options{},
			sys + "<|im_start|>user\na<|im_end|>\n<|im_start|>system\ns<|im_end|>\n"},
		{"continue keeps trailing space the template kept", `[{"role":"user","content":"q"},{"role":"assistant","content":"I think  "}]`, Options{ContinueFinalMessage: true},
			sys + "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\nI think  "},
		{"continue last text part", `[{"role":"user","content":"q"},{"role":"assistant","content":[{"type":"text","text":"one"},{"type":"image"},{"type":"text","text":"two"}]}]`, Options{ContinueFinalMessage: true},
			sys + "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\none<|vision_start|><|image_pad|><|vision_end|>two"},
		{"continue leading space", `[{"role":"user","content":"q"},{"role":"assistant","content":" go"}]`, Options{ContinueFinalMessage: true},
			sys + "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n go"},
		{"continue a user message", `[{"role":"user","content":"Complete: the"}]`, Options{ContinueFinalMessage: true},
			sys + "<|im_start|>user\nComplete: the"},
		{"no messages", `[]`, Options{AddGenerationPrompt: true}, "<|im_start|>assistant\n"},
	}
	for _, c := range cases {
		var msgs []Message
		if err := json.Unmarshal([]byte(c.json), &msgs); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		got, err := tmpl.Render(msgs, c.opts)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if got != c.want {
			t.Errorf("%s:\n got  %q\n want %q", c.name, got, c.want)
		}
	}
}

func TestContinueFinalWhitespaceCut(t *testing.T) {
	// The stripped text "x" occurs last inside the final message; trailing
	// white space that the template kept is kept, as in transformers.
	tmpl := qwen(t)
	got, err := tmpl.Render([]Message{UserText("x"), Assistant("x\n")}, Options{ContinueFinalMessage: true})
	if err != nil {
		t.Fatal(err)
	}
	if want := "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\nx\n"; got != want {
		t.Fatalf("got %q want %q", got, want)
	}
}

func TestRenderErrors(t *testing.T) {
	tmpl := qwen(t)
	if _, err := tmpl.Render([]Message{UserText("a")}, Options{AddGenerationPrompt: true, ContinueFinalMessage: true}); err == nil {
		t.Error("both options set: no error")
	}
	if _, err := tmpl.Render(nil, Options{ContinueFinalMessage: true}); err == nil {
		t.Error("continue with no messages: no error")
	}
	if _, err := tmpl.Render([]Message{User(Image())}, Options{ContinueFinalMessage: true}); err == nil || !strings.Contains(err.Error(), "no text") {
		t.Errorf("continue without text: %v", err)
	}
	if _, err := tmpl.Render([]Message{{Content: []Part{Text("a")}}}, Options{}); err == nil || !strings.Contains(err.Error(), "role") {
		t.Errorf("empty role: %v", err)
	}
}

func TestParseRefusesOtherTemplates(t *testing.T) {
	for _, src := range []string{
		"{% for message in messages %}{{ message['content'] }}{% endfor %}",
		strings.Replace(Qwen2VLTemplate, "You are a helpful assistant.", "You are Qwen.", 1),
		"",
	} {
		if _, err := Parse(src); err == nil || !strings.Contains(err.Error(), "unsupported chat template") {
			t.Errorf("Parse(%.40q) = %v, want an unsupported-template error", src, err)
		}
	}
	if _, err := Parse(Qwen2VLTemplate + "\n"); err != nil {
		t.Errorf("trailing newline: %v", err)
	}
}

func TestLoadSources(t *testing.T) {
	write := func(dir, name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tj, _ := json.Marshal(map[string]any{"chat_template": Qwen2VLTemplate})
	named, _ := json.Marshal(map[string]any{"chat_template": []map[string]string{{"name": "tool_use", "template": "x"}, {"name": "default", "template": Qwen2VLTemplate}}})

	dir := t.TempDir()
	write(dir, "tokenizer_config.json", string(tj))
	if _, err := Load(dir); err != nil {
		t.Errorf("from tokenizer_config.json: %v", err)
	}
	dir = t.TempDir()
	write(dir, "tokenizer_config.json", string(named))
	if _, err := Load(dir); err != nil {
		t.Errorf("named templates: %v", err)
	}
	dir = t.TempDir()
	write(dir, "chat_template.jinja", Qwen2VLTemplate)
	write(dir, "tokenizer_config.json", `{"chat_template": "other"}`)
	if _, err := Load(dir); err != nil {
		t.Errorf("chat_template.jinja first: %v", err)
	}
	dir = t.TempDir()
	write(dir, "chat_template.json", `{"chat_template": "{{ messages }}"}`)
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "chat_template.json") {
		t.Errorf("foreign template: %v", err)
	}
	if _, err := Load(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no chat template") {
		t.Errorf("empty folder: %v", err)
	}
}

func TestMessageJSONErrors(t *testing.T) {
	for _, bad := range []string{
		`{"content":"x"}`,
		`{"role":"user","content":null}`,
		`{"role":"user","content":42}`,
		`{"role":"user","content":[{"type":"text","text":5}]}`,
		`{"role":"user","content":["x"]}`,
	} {
		var m Message
		if err := json.Unmarshal([]byte(bad), &m); err == nil {
			t.Errorf("Unmarshal(%s) succeeded", bad)
		}
	}
	var m Message
	if err := json.Unmarshal([]byte(`{"role":"user","content":[{"type":"image","image":"file:///a.png"},{"type":"text","text":"hi"}]}`), &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Content) != 2 || m.Content[0].Image != "file:///a.png" || !m.Content[0].IsImage() || m.Content[1].Text != "hi" {
		t.Errorf("parsed %+v", m)
	}
}

func TestMessageJSONRoundTrip(t *testing.T) {
	tmpl := qwen(t)
	in := `[{"role":"user","content":[{"image":"a.png"},{"type":"image_url","image_url":{"url":"u"}},{"type":"video","video":["f1","f2"]},{"type":"text","text":""},{"type":"text"}]},{"role":"assistant","content":""}]`
	var msgs []Message
	if err := json.Unmarshal([]byte(in), &msgs); err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(msgs)
	if err != nil {
		t.Fatal(err)
	}
	var back []Message
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	for _, opts := range []Options{{}, {ContinueFinalMessage: true}, {AddVisionID: true}} {
		a, errA := tmpl.Render(msgs, opts)
		b, errB := tmpl.Render(back, opts)
		if a != b || (errA == nil) != (errB == nil) {
			t.Errorf("opts %+v: before JSON %q (%v), after %q (%v); JSON %s", opts, a, errA, b, errB, data)
		}
	}
	if !reflect.DeepEqual(back[0].Content[2].VideoFrames, []string{"f1", "f2"}) || back[0].Content[1].ImageURL != "u" {
		t.Errorf("round trip lost fields: %s", data)
	}
}
