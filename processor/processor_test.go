package processor

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/mmft-go/mmft/chattemplate"
	"github.com/mmft-go/mmft/imageproc"
	"github.com/mmft-go/mmft/internal/shared"
	"github.com/mmft-go/mmft/safetensors"
)

const (
	imagePad    = 151655
	visionStart = 151652
	visionEnd   = 151653
	endOfText   = 151643
)

var (
	loadOnce sync.Once
	loaded   *Processor
	loadErr  error
)

func realProcessor(t testing.TB) *Processor {
	t.Helper()
	dir := shared.Asset(t)
	loadOnce.Do(func() { loaded, loadErr = Load(dir) })
	if loadErr != nil {
		t.Fatal(loadErr)
	}
	return loaded
}

type templateCase struct {
	Messages             []chattemplate.Message `json:"messages"`
	ContinueFinalMessage bool                   `json:"continue_final_message"`
	Rendered             string                 `json:"rendered"`
	IDs                  []int32                `json:"ids"`
}

func loadTemplateCase(t testing.TB) templateCase {
	t.Helper()
	b, err := os.ReadFile(shared.Fixture(t, "tokenizer", "chat_template_case.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c templateCase
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func loadImage(t testing.TB, name string) *imageproc.RGB {
	t.Helper()
	b, err := os.ReadFile(shared.Fixture(t, "image", name))
	if err != nil {
		t.Fatal(err)
	}
	img, err := imageproc.Decode(b, imageproc.DecodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// expandFixture is the fixture's ids with its single <|image_pad|> repeated n times.
func expandFixture(ids []int32, n int) []int32 {
	var out []int32
	for _, id := range ids {
		if id == imagePad {
			for range n {
				out = append(out, imagePad)
			}
			continue
		}
		out = append(out, id)
	}
	return out
}

func TestChatTemplateCaseWithImage(t *testing.T) {
	p := realProcessor(t)
	c := loadTemplateCase(t)
	img := loadImage(t, "public_0_100x73.png") // grid (1, 6, 8): 48 patches, 12 tokens
	enc, err := p.Encode(Input{Messages: c.Messages, Images: []*imageproc.RGB{img},
		Template: chattemplate.Options{ContinueFinalMessage: c.ContinueFinalMessage}})
	if err != nil {
		t.Fatal(err)
	}
	if enc.Text != c.Rendered {
		t.Fatalf("rendered text differs:\n got %q\nwant %q", enc.Text, c.Rendered)
	}
	if len(enc.Grids) != 1 || enc.Grids[0] != [3]int{1, 6, 8} {
		t.Fatalf("grids %v, want [[1 6 8]]", enc.Grids)
	}
	want := expandFixture(c.IDs, 12)
	if !slices.Equal(enc.InputIDs, want) {
		t.Fatalf("ids differ from the fixture's with 12 image tokens:\n got %v\nwant %v", enc.InputIDs, want)
	}
	// HF's pattern: vision_start, N × image_pad, vision_end.
	s := enc.ImageSpans[0]
	if s.Len() != 12 || enc.InputIDs[s.Start-1] != visionStart || enc.InputIDs[s.End] != visionEnd {
		t.Fatalf("image span %+v is not vision_start, 12 × image_pad, vision_end", s)
	}
	if enc.PatchDim != 1176 || len(enc.PixelValues) != 48*1176 {
		t.Fatalf("pixel values: %d values of patch dim %d, want 48×1176", len(enc.PixelValues), enc.PatchDim)
	}
	direct, err := p.Images().Preprocess(img)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(direct.PixelValues, enc.PixelValues) {
		t.Fatal("pixel values differ from the image processor's")
	}

	// The text alone (no image given) is refused, naming the mismatch.
	if _, err := p.EncodeText(c.Rendered, nil); err == nil || !strings.Contains(err.Error(), "1 image placeholders but 0 images") {
		t.Errorf("missing image: %v", err)
	}
}

func TestTwoImagesInMessageOrder(t *testing.T) {
	p := realProcessor(t)
	a := loadImage(t, "public_1_56x56.png")  // grid (1,4,4): 4 tokens
	b := loadImage(t, "public_3_20x200.png") // grid (1,14,2): 7 tokens
	msgs := []chattemplate.Message{
		chattemplate.User(chattemplate.Text("Compare "), chattemplate.Image(), chattemplate.Text(" with "), chattemplate.Image()),
	}
	enc, err := p.Encode(Input{Messages: msgs, Images: []*imageproc.RGB{a, b}, Template: chattemplate.Options{AddGenerationPrompt: true}})
	if err != nil {
		t.Fatal(err)
	}
	if len(enc.ImageSpans) != 2 || enc.ImageSpans[0].Len() != 4 || enc.ImageSpans[1].Len() != 7 {
		t.Fatalf("spans %+v, want 4 then 7 tokens", enc.ImageSpans)
	}
	if enc.Grids[0] != [3]int{1, 4, 4} || enc.Grids[1] != [3]int{1, 14, 2} {
		t.Fatalf("grids %v", enc.Grids)
	}
	if len(enc.PixelValues) != (16+28)*1176 {
		t.Fatalf("%d pixel values, want %d", len(enc.PixelValues), (16+28)*1176)
	}
	// Swapping the images swaps the runs.
	enc2, err := p.Encode(Input{Messages: msgs, Images: []*imageproc.RGB{b, a}, Template: chattemplate.Options{AddGenerationPrompt: true}})
	if err != nil {
		t.Fatal(err)
	}
	if enc2.ImageSpans[0].Len() != 7 || enc2.ImageSpans[1].Len() != 4 {
		t.Fatalf("swapped spans %+v", enc2.ImageSpans)
	}
	if _, err := p.Encode(Input{Messages: msgs, Images: []*imageproc.RGB{a}}); err == nil {
		t.Error("two image parts with one image were accepted")
	}
	vid := []chattemplate.Message{chattemplate.User(chattemplate.Video(), chattemplate.Text("what happens?"))}
	if _, err := p.Encode(Input{Messages: vid}); err == nil || !strings.Contains(err.Error(), "video") {
		t.Errorf("video: %v", err)
	}
}

func TestBatchLeftPadding(t *testing.T) {
	p := realProcessor(t)
	c := loadTemplateCase(t)
	opts := chattemplate.Options{ContinueFinalMessage: true}
	long, err := p.Encode(Input{Messages: c.Messages, Images: []*imageproc.RGB{loadImage(t, "public_0_100x73.png")}, Template: opts})
	if err != nil {
		t.Fatal(err)
	}
	short, err := p.Encode(Input{Messages: []chattemplate.Message{chattemplate.User(chattemplate.Image(), chattemplate.Text("hi"))},
		Images: []*imageproc.RGB{loadImage(t, "public_1_56x56.png")}, Template: chattemplate.Options{AddGenerationPrompt: true}})
	if err != nil {
		t.Fatal(err)
	}
	if p.PadID() != endOfText {
		t.Fatalf("pad id %d, want <|endoftext|> %d", p.PadID(), endOfText)
	}
	b, err := p.Batch([]*Encoding{short, long}, BatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	L := len(long.InputIDs)
	pad := L - len(short.InputIDs)
	if len(b.InputIDs) != 2 || len(b.InputIDs[0]) != L || len(b.InputIDs[1]) != L {
		t.Fatalf("batch shape wrong")
	}
	for j := range L {
		wantMask := int32(1)
		if j < pad {
			wantMask = 0
			if b.InputIDs[0][j] != endOfText {
				t.Fatalf("padding position %d holds %d", j, b.InputIDs[0][j])
			}
		}
		if b.AttentionMask[0][j] != wantMask || b.AttentionMask[1][j] != 1 {
			t.Fatalf("mask wrong at %d", j)
		}
	}
	if !slices.Equal(b.InputIDs[0][pad:], short.InputIDs) || !slices.Equal(b.InputIDs[1], long.InputIDs) {
		t.Fatal("tokens moved by padding")
	}
	if !slices.Equal(b.PixelValues, append(slices.Clone(short.PixelValues), long.PixelValues...)) {
		t.Fatal("pixel values not concatenated in batch order")
	}
	if len(b.Grids) != 2 || b.Grids[0] != [3]int{1, 4, 4} || b.Grids[1] != [3]int{1, 6, 8} {
		t.Fatalf("grids %v", b.Grids)
	}
	b8, _ := p.Batch([]*Encoding{short, long}, BatchOptions{PadToMultipleOf: 8})
	if len(b8.InputIDs[0])%8 != 0 {
		t.Errorf("PadToMultipleOf 8 gave length %d", len(b8.InputIDs[0]))
	}
}

func TestTruncationNeverCutsAnImage(t *testing.T) {
	p := realProcessor(t)
	c := loadTemplateCase(t)
	enc, err := p.Encode(Input{Messages: c.Messages, Images: []*imageproc.RGB{loadImage(t, "public_0_100x73.png")},
		Template: chattemplate.Options{ContinueFinalMessage: true}})
	if err != nil {
		t.Fatal(err)
	}
	n := len(enc.InputIDs)
	first := enc.ImageSpans[0].Start - 1 // the <|vision_start|>

	if _, err := p.Batch([]*Encoding{enc}, BatchOptions{MaxLength: n - 1}); err == nil || !strings.Contains(err.Error(), "truncation is off") {
		t.Errorf("default policy: %v", err)
	}
	// Dropping text from the left works up to the image's vision_start.
	tr, err := p.Truncate(enc, n-first, TruncateLeft)
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.InputIDs) != n-first || tr.InputIDs[0] != visionStart || tr.Dropped != first {
		t.Fatalf("truncated to %d tokens starting with %d (dropped %d)", len(tr.InputIDs), tr.InputIDs[0], tr.Dropped)
	}
	if s := tr.ImageSpans[0]; s.Start != 1 || s.Len() != 12 || tr.InputIDs[s.End] != visionEnd {
		t.Fatalf("span after truncation %+v", s)
	}
	if !slices.Equal(tr.InputIDs, enc.InputIDs[first:]) || len(tr.PixelValues) != len(enc.PixelValues) {
		t.Fatal("truncation changed more than the dropped tokens")
	}
	// One more token would cut into the image: refused.
	if _, err := p.Truncate(enc, n-first-1, TruncateLeft); err == nil || !strings.Contains(err.Error(), "without cutting an image") {
		t.Errorf("cutting into an image: %v", err)
	}
	b, err := p.Batch([]*Encoding{enc}, BatchOptions{MaxLength: n - 10, Truncation: TruncateLeft})
	if err != nil || len(b.InputIDs[0]) != n-10 {
		t.Fatalf("batch with truncation: %v", err)
	}
}

// TestTinyReferenceLayout rebuilds the tiny model fixture's input_ids and
// attention_mask from its text tokens and image grids: each image's single
// placeholder expanded to t·h·w/4 tokens, then left padding with id 0.
func TestTinyReferenceLayout(t *testing.T) {
	f, err := safetensors.ReadFile(shared.Fixture(t, "qwen2vl-tiny", "reference.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	get := func(name string) ([]int64, []int) {
		info, ok := f.Tensor(name)
		if !ok {
			t.Fatalf("no %s in reference.safetensors", name)
		}
		v, err := safetensors.ToInt64(info)
		if err != nil {
			t.Fatal(err)
		}
		return v, info.Shape
	}
	ids, shape := get("input_ids")
	mask, _ := get("attention_mask")
	grid, _ := get("image_grid_thw")
	B, L := shape[0], shape[1]
	const tinyImage, tinyPad = 1001, 0
	var seqs [][]int32
	gi := 0
	for b := range B {
		var collapsed []int32
		var counts []int
		for j := range L {
			id := int32(ids[b*L+j])
			if mask[b*L+j] == 0 {
				continue
			}
			if id == tinyImage && len(collapsed) > 0 && collapsed[len(collapsed)-1] == tinyImage {
				continue
			}
			if id == tinyImage {
				g := grid[gi*3 : gi*3+3]
				counts = append(counts, int(g[0]*g[1]*g[2])/4)
				gi++
			}
			collapsed = append(collapsed, id)
		}
		exp, spans, err := ExpandImagePads(collapsed, tinyImage, counts)
		if err != nil {
			t.Fatal(err)
		}
		if exp[spans[0].Start-1] != 1003 || exp[spans[0].End] != 1004 {
			t.Errorf("sequence %d: image run not framed by vision start/end", b)
		}
		seqs = append(seqs, exp)
	}
	gotIDs, gotMask := PadLeft(seqs, tinyPad, 0)
	for b := range B {
		for j := range L {
			if int64(gotIDs[b][j]) != ids[b*L+j] || int64(gotMask[b][j]) != mask[b*L+j] {
				t.Fatalf("sequence %d position %d: got id %d mask %d, reference id %d mask %d", b, j, gotIDs[b][j], gotMask[b][j], ids[b*L+j], mask[b*L+j])
			}
		}
	}
}

func TestExpandImagePadsErrors(t *testing.T) {
	if _, _, err := ExpandImagePads([]int32{1, 9, 2}, 9, nil); err == nil {
		t.Error("one placeholder, no images: accepted")
	}
	if _, _, err := ExpandImagePads([]int32{1, 9, 2}, 9, []int{0}); err == nil {
		t.Error("zero-token image accepted")
	}
	got, spans, err := ExpandImagePads([]int32{1, 9, 2, 9}, 9, []int{2, 3})
	if err != nil || !slices.Equal(got, []int32{1, 9, 9, 2, 9, 9, 9}) || spans[1] != (Span{4, 7}) {
		t.Errorf("got %v %v %v", got, spans, err)
	}
}
