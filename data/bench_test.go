package data

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/mmft-go/mmft/data/pylit"
)

// benchDataset writes rows documents with noisy (incompressible) 256×256 PNG
// images, about 190 KiB each, in row groups of 16, and returns its folder and
// total image bytes.
func benchDataset(b *testing.B, rows int) (string, int64) {
	b.Helper()
	dir := b.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	var recs []sujetRow
	var total int64
	for i := range rows {
		img := image.NewRGBA(image.Rect(0, 0, 256, 256))
		for p := 0; p < len(img.Pix); p += 4 {
			img.Pix[p], img.Pix[p+1], img.Pix[p+2], img.Pix[p+3] = uint8(rng.Uint32()), uint8(rng.Uint32()), uint8(rng.Uint32()), 255
		}
		var buf bytes.Buffer
		if err := png.Encode(&buf, img); err != nil {
			b.Fatal(err)
		}
		total += int64(buf.Len())
		var qa []any
		for j := range 10 {
			qa = append(qa, &pylit.Dict{Items: []pylit.Item{
				{Key: "question", Value: fmt.Sprintf("<image>What was the company's revenue in Q%d of year %d?", j%4+1, 2000+i)},
				{Key: "answer", Value: fmt.Sprintf("$%d.%d million", i*j, j)},
			}})
		}
		lit, err := pylit.Format(qa)
		if err != nil {
			b.Fatal(err)
		}
		recs = append(recs, sujetRow{DocID: fmt.Sprintf("doc_%05d", i), Image: &hfImage{Bytes: buf.Bytes(), Path: "x.png"},
			Content: "A financial statement with several tables and figures.", QAPairs: lit})
	}
	writeParquet(b, filepath.Join(dir, "data", "train-00000-of-00001.parquet"), recs, 16)
	return dir, total
}

// benchN is the number of rows of the benchmark dataset (about 24 MiB).
const benchN = 128

func benchRows(b *testing.B, opts Options) {
	dir, total := benchDataset(b, benchN)
	ds, err := Open(context.Background(), dir, opts)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(total)
	b.ReportAllocs()
	runtime.GC()
	runtime.GC() // twice: sync.Pool caches survive one collection
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	b.ResetTimer()
	var peak uint64
	first := true
	for b.Loop() {
		n := 0
		for row, err := range ds.Rows(context.Background(), "train", nil) {
			if err != nil {
				b.Fatal(err)
			}
			n++
			if row.Index%16 == 15 && first {
				runtime.GC() // measure live memory only, on the first run
				runtime.GC()
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapAlloc)
			}
		}
		if n != benchN {
			b.Fatalf("%d rows", n)
		}
		first = false
	}
	b.ReportMetric(float64(benchN*b.N)/b.Elapsed().Seconds(), "rows/s")
	if peak > 0 {
		b.ReportMetric(float64(peak-min(peak, base))/(1<<20), "live-MiB")
	}
}

// BenchmarkRowsHeader reads rows checking image headers only (the default).
func BenchmarkRowsHeader(b *testing.B) { benchRows(b, Options{}) }

// BenchmarkRowsFullDecode reads rows decoding every image fully.
func BenchmarkRowsFullDecode(b *testing.B) { benchRows(b, Options{FullDecode: true}) }

// BenchmarkSamplerEpoch streams one shuffled epoch (one pair per image).
func BenchmarkSamplerEpoch(b *testing.B) {
	dir, total := benchDataset(b, benchN)
	ds, err := Open(context.Background(), dir, Options{})
	if err != nil {
		b.Fatal(err)
	}
	s, err := NewSampler(ds, "train", SamplerOptions{Seed: 1, ShuffleBuffer: 32})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(total)
	b.ResetTimer()
	epoch := 0
	for b.Loop() {
		for _, err := range s.Epoch(context.Background(), epoch, nil) {
			if err != nil {
				b.Fatal(err)
			}
		}
		epoch++
	}
	b.ReportMetric(float64(benchN*b.N)/b.Elapsed().Seconds(), "samples/s")
}
