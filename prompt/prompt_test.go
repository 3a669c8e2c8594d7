package prompt

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/mmft-go/mmft/imageproc"
	"github.com/mmft-go/mmft/internal/shared"
	"github.com/mmft-go/mmft/processor"
)

var (
	procOnce sync.Once
	proc     *processor.Processor
	procErr  error
)

func builder(t *testing.T, cfg Config) *Builder {
	t.Helper()
	dir := shared.Asset(t)
	procOnce.Do(func() { proc, procErr = processor.Load(dir) })
	if procErr != nil {
		t.Fatal(procErr)
	}
	b, err := New(proc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type fixtureCase struct {
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	Rendered string  `json:"rendered"`
	IDs      []int32 `json:"ids"`
}

func loadCase(t *testing.T) fixtureCase {
	t.Helper()
	b, err := os.ReadFile(shared.Fixture(t, "tokenizer", "chat_template_case.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c fixtureCase
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func image(t *testing.T) *imageproc.RGB {
	t.Helper()
	b, err := os.ReadFile(shared.Fixture(t, "image", "public_1_56x56.png"))
	if err != nil {
		t.Fatal(err)
	}
	img, err := imageproc.Decode(b, imageproc.DecodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestSeedPromptMatchesFixture(t *testing.T) {
	c := loadCase(t)
	// The fixture's system prompt and prefill are the seed's defaults.
	var sys, prefill string
	if err := json.Unmarshal(c.Messages[0].Content, &sys); err != nil {
		t.Fatalf("fixture system message: %v", err)
	}
	if err := json.Unmarshal(c.Messages[2].Content, &prefill); err != nil {
		t.Fatalf("fixture assistant prefill: %v", err)
	}
	if sys != DefaultSystemPrompt || prefill != DefaultPrefill {
		t.Fatalf("defaults differ from the fixture:\n%q\n%q", sys, prefill)
	}
	b := builder(t, DefaultConfig())
	p, err := b.Build("What is the net income for 2022?", image(t))
	if err != nil {
		t.Fatal(err)
	}
	if p.Text != c.Rendered {
		t.Fatalf("rendered text differs:\n got %q\nwant %q", p.Text, c.Rendered)
	}
	if p.Prefill != DefaultPrefill || !strings.HasSuffix(p.Text, p.Prefill) {
		t.Errorf("prefill %q", p.Prefill)
	}
	// 56×56 → grid (1,4,4) → 4 image tokens in place of the fixture's one.
	var want []int32
	for _, id := range c.IDs {
		if id == 151655 {
			want = append(want, id, id, id, id)
			continue
		}
		want = append(want, id)
	}
	if !slices.Equal(p.IDs, want) {
		t.Fatalf("ids differ:\n got %v\nwant %v", p.IDs, want)
	}
	if len(p.Grids) != 1 || p.Grids[0] != [3]int{1, 4, 4} || len(p.PixelValues) != 16*1176 || p.PatchDim != 1176 {
		t.Fatalf("image: grids %v, %d values, patch dim %d", p.Grids, len(p.PixelValues), p.PatchDim)
	}
}

func TestConfigVariants(t *testing.T) {
	img := image(t)
	cfg := DefaultConfig()
	cfg.Prefill = ""
	p, err := builder(t, cfg).Build("Why?", img)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(p.Text, "Why?<|im_end|>\n<|im_start|>assistant\n") || p.Prefill != "" {
		t.Errorf("no prefill: text ends %q", p.Text[max(0, len(p.Text)-60):])
	}
	cfg = DefaultConfig()
	cfg.QuestionFirst = true
	cfg.SystemPrompt = "Be brief."
	cfg.Prefill = "Sure.  \n"
	p, err = builder(t, cfg).Build("Why?", img)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p.Text, "<|im_start|>system\nBe brief.<|im_end|>") ||
		!strings.Contains(p.Text, "Why?<|vision_start|><|image_pad|><|vision_end|><|im_end|>") {
		t.Errorf("question-first prompt: %q", p.Text)
	}
	if p.Prefill != "Sure.  \n" || !strings.HasSuffix(p.Text, "assistant\nSure.  \n") {
		t.Errorf("prefill with trailing space: %q, text %q", p.Prefill, p.Text)
	}
	// Text only.
	p, err = builder(t, DefaultConfig()).Build("2+2?", nil)
	if err != nil {
		t.Fatalf("text-only prompt: %v", err)
	}
	if strings.Contains(p.Text, "image_pad") || len(p.Grids) != 0 || len(p.PixelValues) != 0 {
		t.Errorf("text-only prompt has image data: %q, grids %v", p.Text, p.Grids)
	}
	if _, err := builder(t, DefaultConfig()).Build("  ", img); err == nil {
		t.Error("empty question accepted")
	}
}

func TestMaxLengthNeverCutsTheImage(t *testing.T) {
	img := image(t)
	full, err := builder(t, DefaultConfig()).Build("What is the net income for 2022?", img)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.MaxLength = len(full.IDs) - 5
	if _, err := builder(t, cfg).Build("What is the net income for 2022?", img); err == nil {
		t.Error("over-long prompt accepted with truncation off")
	}
	cfg.Truncation = processor.TruncateLeft
	p, err := builder(t, cfg).Build("What is the net income for 2022?", img)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.IDs, full.IDs[5:]) || p.ImageSpans[0].Len() != 4 {
		t.Errorf("left truncation kept %d ids, span %+v", len(p.IDs), p.ImageSpans)
	}
	cfg.MaxLength = 20 // less than the turn that holds the image
	if _, err := builder(t, cfg).Build("What is the net income for 2022?", img); err == nil || !strings.Contains(err.Error(), "cutting an image") {
		t.Errorf("truncating into the image: %v", err)
	}
	// The policy reads from JSON config by name.
	var c Config
	if err := json.Unmarshal([]byte(`{"max_length": 512, "truncation": "left"}`), &c); err != nil || c.Truncation != processor.TruncateLeft {
		t.Errorf("config from JSON: %+v %v", c, err)
	}
}

func TestBatchOfPrompts(t *testing.T) {
	b := builder(t, DefaultConfig())
	img := image(t)
	p1, err := b.Build("What is the net income for 2022?", img)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := b.Build("Total?", img)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := b.Batch([]*Prompt{p1, p2})
	if err != nil {
		t.Fatal(err)
	}
	pad := len(p1.IDs) - len(p2.IDs)
	if pad <= 0 || batch.InputIDs[1][0] != 151643 || batch.AttentionMask[1][pad-1] != 0 || batch.AttentionMask[1][pad] != 1 {
		t.Fatalf("second prompt not left-padded with <|endoftext|>: pad %d, row %v", pad, batch.InputIDs[1][:pad+1])
	}
	if len(batch.Grids) != 2 || len(batch.PixelValues) != 2*16*1176 {
		t.Fatalf("images: %v, %d values", batch.Grids, len(batch.PixelValues))
	}
}
