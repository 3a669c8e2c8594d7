package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mmft-go/mmft/internal/shared"
)

func TestOpenTinyModel(t *testing.T) {
	path := shared.Fixture(t, "qwen2vl-tiny", "model.safetensors")
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := f.Metadata()["format"]; got != "pt" {
		t.Errorf("metadata format = %q, want pt", got)
	}
	if n := len(f.Names()); n != 57 {
		t.Errorf("%d tensors, want 57", n)
	}
	emb, ok := f.Tensor("model.embed_tokens.weight")
	if !ok {
		t.Fatal("model.embed_tokens.weight missing")
	}
	if emb.DType != F32 || len(emb.Shape) != 2 || emb.Shape[0] != 1024 || emb.Shape[1] != 64 {
		t.Fatalf("embed_tokens: %s %v", emb.DType, emb.Shape)
	}
	vals, err := ToFloat32(emb)
	if err != nil {
		t.Fatal(err)
	}
	if len(vals) != 1024*64 {
		t.Fatalf("%d values", len(vals))
	}
	var sum float64
	for _, v := range vals {
		if math.IsNaN(float64(v)) || math.Abs(float64(v)) > 10 {
			t.Fatalf("implausible weight %v", v)
		}
		sum += math.Abs(float64(v))
	}
	if sum == 0 {
		t.Fatal("embedding is all zeros")
	}
	if _, ok := f.Tensor("no.such.tensor"); ok {
		t.Error("found a tensor that does not exist")
	}
}

func TestReferenceTensors(t *testing.T) {
	path := shared.Fixture(t, "qwen2vl-tiny", "reference.safetensors")
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	grid, ok := f.Tensor("image_grid_thw")
	if !ok {
		t.Fatal("image_grid_thw missing")
	}
	g, err := ToInt64(grid)
	if err != nil {
		t.Fatal(err)
	}
	// inputs.json: grids [[1,4,6]] and [[1,6,4]].
	want := []int64{1, 4, 6, 1, 6, 4}
	for i := range want {
		if g[i] != want[i] {
			t.Fatalf("image_grid_thw = %v, want %v", g, want)
		}
	}
	g32, err := ToInt32(grid)
	if err != nil || g32[2] != 6 {
		t.Fatalf("ToInt32: %v %v", g32, err)
	}
	if _, err := ToFloat32(grid); err == nil || !strings.Contains(err.Error(), "image_grid_thw") {
		t.Errorf("ToFloat32 of I64 should fail naming the tensor, got %v", err)
	}
	pv, _ := f.Tensor("pixel_values")
	if pv.NumElements() != 48*1176 {
		t.Errorf("pixel_values has %d elements", pv.NumElements())
	}
	if _, err := ToInt64(pv); err == nil {
		t.Error("ToInt64 of F32 should fail")
	}
}

// TestEncodeMatchesReferenceBytes re-encodes every fixture file from its own
// tensors and checks the bytes equal what the Python safetensors package wrote.
func TestEncodeMatchesReferenceBytes(t *testing.T) {
	for _, rel := range [][]string{
		{"qwen2vl-tiny", "model.safetensors"},
		{"qwen2vl-tiny", "reference.safetensors"},
		{"qwen2vl-tiny", "lora_adapter", "adapter_model.safetensors"},
	} {
		path := shared.Fixture(t, rel...)
		orig, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		f, err := Parse(orig)
		if err != nil {
			t.Fatal(err)
		}
		var ts []NamedTensor
		for _, n := range f.Names() {
			info, _ := f.Tensor(n)
			ts = append(ts, NamedTensor{Name: n, DType: info.DType, Shape: info.Shape, Data: info.Data})
		}
		got, err := Encode(ts, f.Metadata())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, orig) {
			t.Errorf("%s: re-encoded bytes differ from the reference file (len %d vs %d)", filepath.Join(rel...), len(got), len(orig))
		}
	}
}

func sampleTensors() []NamedTensor {
	return []NamedTensor{
		FromFloat32("w", []int{2, 3}, []float32{1, -2, 3.5, 0, float32(math.Inf(1)), 1e-30}),
		FromInt64("ids", []int{4}, []int64{0, -1, 1 << 40, 151655}),
		FromFloat32AsBF16("b", []int{3}, []float32{1, 3.14159, -65504}),
		FromFloat32AsF16("h", []int{2}, []float32{0.5, -1.25}),
		FromInt32("i32", []int{2}, []int32{-7, 9}),
		{Name: "mask", DType: Bool, Shape: []int{3}, Data: []byte{1, 0, 1}},
		{Name: "u8", DType: U8, Shape: []int{2}, Data: []byte{255, 3}},
		{Name: "i8", DType: I8, Shape: []int{1}, Data: []byte{0xff}},
		{Name: "scalar", DType: F64, Shape: []int{}, Data: binary.LittleEndian.AppendUint64(nil, math.Float64bits(2.5))},
		{Name: "empty", DType: F32, Shape: []int{0, 5}, Data: nil},
	}
}

func TestWriteRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.safetensors")
	ts := sampleTensors()
	if err := Write(path, ts, map[string]string{"format": "pt", "note": "ü \"quoted\""}); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	if n := binary.LittleEndian.Uint64(raw); (8+n)%8 != 0 {
		t.Errorf("header length %d is not 8-aligned", n)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Metadata()["note"] != "ü \"quoted\"" {
		t.Errorf("metadata = %v", f.Metadata())
	}
	for _, want := range ts {
		got, ok := f.Tensor(want.Name)
		if !ok {
			t.Fatalf("%s missing", want.Name)
		}
		if got.DType != want.DType || len(got.Shape) != len(want.Shape) || !bytes.Equal(got.Data, want.Data) {
			t.Errorf("%s: got %s %v %x, want %s %v %x", want.Name, got.DType, got.Shape, got.Data, want.DType, want.Shape, want.Data)
		}
	}
	b, _ := f.Tensor("b")
	bv, _ := ToFloat32(b)
	if bv[0] != 1 || math.Abs(float64(bv[1])-3.14159) > 0.02 || bv[2] != -65536 {
		t.Errorf("bf16 values %v", bv)
	}
	h, _ := f.Tensor("h")
	if hv, _ := ToFloat32(h); hv[0] != 0.5 || hv[1] != -1.25 {
		t.Errorf("f16 values %v", hv)
	}
	ids, _ := f.Tensor("ids")
	if iv, _ := ToInt64(ids); iv[2] != 1<<40 || iv[1] != -1 {
		t.Errorf("ids %v", iv)
	}
	if _, err := ToInt32(ids); err == nil {
		t.Error("ToInt32 should refuse 1<<40")
	}
	i8, _ := f.Tensor("i8")
	if v, _ := ToInt64(i8); v[0] != -1 {
		t.Errorf("i8 %v", v)
	}
	sc, _ := f.Tensor("scalar")
	if v, _ := ToFloat32(sc); len(v) != 1 || v[0] != 2.5 {
		t.Errorf("scalar %v", v)
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, ".*tmp*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Tensor("w"); ok {
		t.Error("Tensor after Close should report missing")
	}
}

func TestBF16Rounding(t *testing.T) {
	cases := []struct {
		in   uint32
		want uint16
	}{
		{0x3f800000, 0x3f80}, // 1.0
		{0x3f808000, 0x3f80}, // tie, even stays
		{0x3f818000, 0x3f82}, // tie, odd rounds up
		{0x3f808001, 0x3f81}, // above half
		{0x7f7fffff, 0x7f80}, // max float rounds to inf
		{0xff800000, 0xff80}, // -inf
		{0x7fc00000, 0x7fc0}, // NaN
		{0x7f800001, 0x7fc0}, // signalling NaN becomes quiet
		{0x80000000, 0x8000}, // -0
	}
	for _, c := range cases {
		if got := Float32ToBF16(math.Float32frombits(c.in)); got != c.want {
			t.Errorf("Float32ToBF16(%#x) = %#x, want %#x", c.in, got, c.want)
		}
	}
}

func TestWriteRefusesBadTensors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.safetensors")
	if err := os.WriteFile(path, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := map[string][]NamedTensor{
		"needs 24 bytes": {{Name: "a", DType: F32, Shape: []int{2, 3}, Data: make([]byte, 20)}},
		"unsupported":    {{Name: "a", DType: "Q4", Shape: []int{1}, Data: make([]byte, 1)}},
		"empty name":     {{Name: "", DType: U8, Shape: []int{1}, Data: make([]byte, 1)}},
		"reserved":       {{Name: "__metadata__", DType: U8, Shape: []int{1}, Data: make([]byte, 1)}},
		"given twice":    {FromInt64("a", []int{1}, []int64{1}), FromInt64("a", []int{1}, []int64{2})},
		"negative":       {{Name: "a", DType: U8, Shape: []int{-1}, Data: nil}},
	}
	for want, ts := range cases {
		err := Write(path, ts, nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Write(%s): error %v, want one containing %q", want, err, want)
		}
	}
	if b, _ := os.ReadFile(path); string(b) != "keep me" {
		t.Error("a refused write damaged the existing file")
	}
}

func TestShardedRoundTrip(t *testing.T) {
	dir := t.TempDir()
	var ts []NamedTensor
	for i := range 7 {
		vals := make([]float32, 100*(i+1))
		for j := range vals {
			vals[j] = float32(i*1000 + j)
		}
		ts = append(ts, FromFloat32("layer."+string(rune('a'+i))+".weight", []int{i + 1, 100}, vals))
	}
	ts = append(ts, FromFloat32AsBF16("big", []int{3000}, make([]float32, 3000))) // 6000 bytes > limit: own shard
	files, err := WriteSharded(dir, ts, map[string]string{"format": "pt"}, 1200*4)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 4 || filepath.Base(files[len(files)-1]) != IndexFile {
		t.Fatalf("files %v", files)
	}
	var idx Index
	b, _ := os.ReadFile(filepath.Join(dir, IndexFile))
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, x := range ts {
		total += x.ByteSize()
	}
	if idx.Metadata["total_size"] != float64(total) {
		t.Errorf("total_size %v, want %d", idx.Metadata["total_size"], total)
	}
	nShards := len(files) - 1
	for i, p := range files[:nShards] {
		want := "model-0000" + string(rune('1'+i)) + "-of-0000" + string(rune('0'+nShards)) + ".safetensors"
		if filepath.Base(p) != want {
			t.Errorf("shard %d named %s, want %s", i, filepath.Base(p), want)
		}
		st, _ := os.Stat(p)
		f, _ := Open(p)
		var data int64
		for _, n := range f.Names() {
			x, _ := f.Tensor(n)
			data += int64(len(x.Data))
		}
		f.Close()
		if data > 1200*4 && len(f.Names()) > 1 {
			t.Errorf("%s holds %d data bytes (%d on disk), over the limit", p, data, st.Size())
		}
	}
	s, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if len(s.Names()) != len(ts) || len(s.Files()) != nShards {
		t.Fatalf("names %v files %v", s.Names(), s.Files())
	}
	for _, want := range ts {
		got, ok := s.Tensor(want.Name)
		if !ok || !bytes.Equal(got.Data, want.Data) {
			t.Errorf("%s differs after the sharded round trip", want.Name)
		}
	}
	if s.Metadata()["format"] != "pt" {
		t.Error("metadata lost")
	}

	// Saving again without a limit writes a lone model.safetensors and removes the stale shards and index.
	if _, err := WriteSharded(dir, ts[:2], nil, 0); err != nil {
		t.Fatal(err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(left) != 1 || filepath.Base(left[0]) != SingleFile {
		t.Errorf("after an unsharded save the folder holds %v", left)
	}
	s2, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if len(s2.Names()) != 2 {
		t.Errorf("names %v", s2.Names())
	}
}

func TestOpenIndexErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := OpenDir(dir); err == nil || !strings.Contains(err.Error(), "neither") {
		t.Errorf("empty folder: %v", err)
	}
	if err := Write(filepath.Join(dir, "model-00001-of-00001.safetensors"), []NamedTensor{FromInt64("a", []int{1}, []int64{1})}, nil); err != nil {
		t.Fatal(err)
	}
	write := func(s string) string {
		p := filepath.Join(dir, IndexFile)
		os.WriteFile(p, []byte(s), 0o644)
		return p
	}
	cases := map[string]string{
		`{"weight_map": {"b": "model-00001-of-00001.safetensors"}}`: `does not hold it`,
		`{"weight_map": {"a": "missing.safetensors"}}`:              `missing.safetensors`,
		`{"weight_map": {"a": "../x.safetensors"}}`:                 `not a plain file name`,
		`{"weight_map": {}}`:                                        `no weight_map`,
		`{"weight_map": `:                                           `not valid JSON`,
	}
	for content, want := range cases {
		_, err := OpenIndex(write(content))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("index %s: error %v, want %q", content, err, want)
		}
	}
	s, err := OpenIndex(write(`{"metadata": {"total_size": 8}, "weight_map": {"a": "model-00001-of-00001.safetensors"}}`))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

// header builds a file from a literal JSON header and data bytes.
func header(h string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
	return append(append(b, h...), data...)
}

func TestCorruptFiles(t *testing.T) {
	good, err := Encode(sampleTensors(), map[string]string{"format": "pt"})
	if err != nil {
		t.Fatal(err)
	}
	huge := binary.LittleEndian.AppendUint64(nil, 1<<40)
	cases := []struct {
		name, want string
		data       []byte
	}{
		{"empty", "too short", nil},
		{"truncated length", "too short", good[:5]},
		{"truncated header", "runs past the end", good[:40]},
		{"truncated data", "run past", good[:len(good)-3]},
		{"huge header length", "exceeds", append(huge, good[8:]...)},
		{"not json", "not a JSON object", header("hello world!", nil)},
		{"bad json", "header JSON", header(`{"a":{"dtype":"F32",`, nil)},
		{"trailing", "trailing data", header(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}} {}`, []byte{1})},
		{"out of range", "run past the 4 data bytes", header(`{"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}}`, make([]byte, 4))},
		{"size mismatch", "needs 16 bytes", header(`{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,8]}}`, make([]byte, 16))},
		{"reversed", "reversed", header(`{"a":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}}`, make([]byte, 4))},
		{"overlap", "overlap", header(`{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}`, make([]byte, 8))},
		{"unknown dtype", "unsupported dtype", header(`{"a":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}}`, make([]byte, 1))},
		{"duplicate", "appears twice", header(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`, make([]byte, 2))},
		{"no offsets", "no data_offsets", header(`{"a":{"dtype":"U8","shape":[0]}}`, nil)},
		{"no shape", "no shape", header(`{"a":{"dtype":"U8","data_offsets":[0,0]}}`, nil)},
		{"negative offset", "header JSON", header(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[-1,0]}}`, nil)},
		{"negative dim", "negative dimension", header(`{"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}}`, nil)},
		{"bad metadata", "__metadata__", header(`{"__metadata__":{"x":1}}`, nil)},
		{"huge shape", "too large", header(`{"a":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,0]}}`, nil)},
	}
	dir := t.TempDir()
	for _, c := range cases {
		_, err := Parse(c.data)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Parse error %v, want one containing %q", c.name, err, c.want)
		}
		p := filepath.Join(dir, "c.safetensors")
		if err := os.WriteFile(p, c.data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err = Open(p)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: Open error %v, want one naming the file and containing %q", c.name, err, c.want)
		}
	}
	if _, err := Open(filepath.Join(dir, "absent.safetensors")); err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("absent file: %v", err)
	}
	// Fields a tensor entry may carry beyond dtype, shape and data_offsets are
	// ignored, and the header may be padded with spaces, as writers align it.
	f, err := Parse(header(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2],"extra":true}}   `, []byte{7, 9}))
	if err != nil {
		t.Fatalf("header with an extra field and padding: %v", err)
	}
	if a, ok := f.Tensor("a"); !ok || string(a.Data) != "\x07\x09" || !slices.Equal(a.Shape, []int{2}) {
		t.Errorf("tensor a = %+v, %v; want U8 [2] {7, 9}", a, ok)
	}
}

func unwrapAll(err error) error {
	for {
		type u interface{ Unwrap() error }
		w, ok := err.(u)
		if !ok {
			return err
		}
		err = w.Unwrap()
	}
}

func FuzzParse(f *testing.F) {
	good, _ := Encode(sampleTensors(), map[string]string{"format": "pt"})
	f.Add(good)
	f.Add(header(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}`, []byte{1, 2}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data)
		if err != nil {
			return
		}
		// Whatever parses must re-encode and parse back to the same tensors.
		var ts []NamedTensor
		for _, n := range file.Names() {
			info, _ := file.Tensor(n)
			if int64(len(info.Data)) != int64(info.NumElements())*int64(info.DType.Size()) {
				t.Fatalf("%s: %d bytes for %v %s", n, len(info.Data), info.Shape, info.DType)
			}
			ts = append(ts, NamedTensor{Name: n, DType: info.DType, Shape: info.Shape, Data: info.Data})
		}
		enc, err := Encode(ts, file.Metadata())
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		back, err := Parse(enc)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if len(back.Names()) != len(ts) {
			t.Fatal("tensor count changed")
		}
	})
}

func BenchmarkToFloat32BF16(b *testing.B) {
	vals := make([]float32, 1<<20)
	for i := range vals {
		vals[i] = float32(i) * 1e-3
	}
	t := FromFloat32AsBF16("w", []int{1 << 20}, vals)
	info := Info{Name: t.Name, DType: t.DType, Shape: t.Shape, Data: t.Data}
	b.SetBytes(int64(len(t.Data)))
	for b.Loop() {
		if _, err := ToFloat32(info); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWriteOpen(b *testing.B) {
	dir := b.TempDir()
	path := filepath.Join(dir, "bench.safetensors")
	ts := make([]NamedTensor, 64)
	for i := range ts {
		ts[i] = FromFloat32AsBF16(string(rune('a'+i%26))+string(rune('0'+i/26)), []int{256, 256}, make([]float32, 256*256))
	}
	b.SetBytes(64 * 256 * 256 * 2)
	for b.Loop() {
		if err := Write(path, ts, map[string]string{"format": "pt"}); err != nil {
			b.Fatal(err)
		}
		f, err := Open(path)
		if err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}

// TestToFloat32Unaligned checks the byte-wise path taken for tensor data that
// is not 2-byte aligned (possible in files with odd offsets) against the fast path.
func TestToFloat32Unaligned(t *testing.T) {
	vals := []float32{1, -2.5, 3.140625, 65280, -0}
	bf := FromFloat32AsBF16("x", []int{5}, vals)
	buf := make([]byte, len(bf.Data)+1)
	copy(buf[1:], bf.Data)
	aligned, err := ToFloat32(Info{Name: "x", DType: BF16, Shape: []int{5}, Data: bf.Data})
	if err != nil {
		t.Fatal(err)
	}
	unaligned, err := ToFloat32(Info{Name: "x", DType: BF16, Shape: []int{5}, Data: buf[1:]})
	if err != nil {
		t.Fatal(err)
	}
	for i := range vals {
		if aligned[i] != vals[i] || unaligned[i] != vals[i] {
			t.Errorf("element %d: aligned %v unaligned %v want %v", i, aligned[i], unaligned[i], vals[i])
		}
	}
	if _, err := ToFloat32(Info{Name: "x", DType: BF16, Shape: []int{6}, Data: bf.Data}); err == nil {
		t.Error("shape/bytes mismatch accepted")
	}
}
