package mmft

import (
	"encoding/base64"
	"fmt"
	"html"
	"math"
	"sort"
	"strings"

	"github.com/mmft-go/mmft/grpo"
)

// SampleView is one dataset sample as a notebook shows it.
type SampleView struct {
	Index    int    `json:"index"`
	DocID    string `json:"doc_id"`
	Question string `json:"question"`
	Answer   string `json:"answer"`
	// Image is the image as a data URI ("" for a text-only sample).
	Image         string `json:"image"`
	Width, Height int
}

// Samples are samples of a split, with the split's row counts.
type Samples struct {
	Data  DataInfo     `json:"data"`
	Items []SampleView `json:"items"`
}

// HTML renders the samples as a table: image, question, answer.
func (s Samples) HTML() string {
	var b strings.Builder
	fmt.Fprintf(&b, `<div class="mmft-samples"><p><b>%s</b> split <b>%s</b>: %d samples`, esc(s.Data.Ref), esc(s.Data.Split), s.Data.Samples)
	if len(s.Data.Bad) > 0 {
		b.WriteString("; bad rows skipped:")
		for _, k := range sortedKeys(s.Data.Bad) {
			fmt.Fprintf(&b, " %s %d", esc(k), s.Data.Bad[k])
		}
	}
	b.WriteString(`</p><table><tr><th>#</th><th>image</th><th>question</th><th>answer</th></tr>`)
	for _, it := range s.Items {
		fmt.Fprintf(&b, `<tr><td>%d</td><td>%s<br><small>%s %d×%d</small></td><td>%s</td><td><b>%s</b></td></tr>`,
			it.Index, imgTag(it.Image, 240), esc(it.DocID), it.Width, it.Height, esc(it.Question), esc(it.Answer))
	}
	b.WriteString("</table></div>")
	return b.String()
}

// String renders the samples for a terminal.
func (s Samples) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s/%s: %d samples\n", s.Data.Ref, s.Data.Split, s.Data.Samples)
	for _, it := range s.Items {
		fmt.Fprintf(&b, "%d. [%s %dx%d] Q: %s  A: %s\n", it.Index, it.DocID, it.Width, it.Height, it.Question, it.Answer)
	}
	return b.String()
}

// PromptInfo is a rendered prompt with its sizes.
type PromptInfo struct {
	Question string `json:"question"`
	Answer   string `json:"answer"`
	// Text is the chat template's rendering (one <|image_pad|> per image),
	// ending with the assistant's prefill.
	Text string `json:"text"`
	// Tokens counts the prompt's tokens, image tokens included; ImageTokens
	// the image's; Grid is its (t, h, w) patch grid.
	Tokens      int    `json:"tokens"`
	ImageTokens int    `json:"image_tokens"`
	Grid        [3]int `json:"grid"`
	Image       string `json:"image"`
}

// HTML renders the prompt and its counts.
func (p PromptInfo) HTML() string {
	return fmt.Sprintf(`<div class="mmft-prompt">%s<p>%d tokens, of which %d image tokens (grid %d×%d×%d); expected answer <b>%s</b></p><pre>%s</pre></div>`,
		imgTag(p.Image, 240), p.Tokens, p.ImageTokens, p.Grid[0], p.Grid[1], p.Grid[2], esc(p.Answer), esc(p.Text))
}

// String renders the prompt for a terminal.
func (p PromptInfo) String() string {
	return fmt.Sprintf("%d tokens (%d image tokens)\n%s\n", p.Tokens, p.ImageTokens, p.Text)
}

// RewardsInfo is the session's reward set.
type RewardsInfo struct {
	Names   []string  `json:"names"`
	Weights []float64 `json:"weights"`
	// Custom lists the custom rewards compiled in the session.
	Custom []string `json:"custom"`
}

// Spec returns the set as a spec string (NAME=WEIGHT,…).
func (r RewardsInfo) Spec() string {
	items := make([]string, len(r.Names))
	for i, n := range r.Names {
		items[i] = fmt.Sprintf("%s=%g", n, r.Weights[i])
	}
	return strings.Join(items, ",")
}

// RolloutOptions configure Session.Rollout.
type RolloutOptions struct {
	// Prompts is the number of train samples (0: 2); Generations the
	// completions per prompt (0: 4).
	Prompts     int `json:"prompts"`
	Generations int `json:"generations"`
	// Temperature (negative: the training configuration's) and MaxNewTokens
	// (0: the configuration's max completion length).
	Temperature  float64 `json:"temperature"`
	MaxNewTokens int     `json:"max_new_tokens"`
	// Seed seeds the sampling.
	Seed uint64 `json:"seed"`
	// Base uses the base model rather than the session's adapter.
	Base bool `json:"base"`
}

// RolloutCompletion is one scored completion.
type RolloutCompletion struct {
	Text    string    `json:"text"`
	Tokens  int       `json:"tokens"`
	Total   float64   `json:"total"`
	Rewards []float64 `json:"rewards"`
}

// RolloutPrompt is one prompt with its completions.
type RolloutPrompt struct {
	DocID       string              `json:"doc_id"`
	Question    string              `json:"question"`
	Answer      string              `json:"answer"`
	Image       string              `json:"image"`
	Prefill     string              `json:"prefill"`
	Completions []RolloutCompletion `json:"completions"`
}

// Gallery is a rollout: prompts, completions and their rewards.
type Gallery struct {
	RewardNames []string        `json:"reward_names"`
	Prompts     []RolloutPrompt `json:"prompts"`
	// MeanReward is the mean total reward of all completions.
	MeanReward float64 `json:"mean_reward"`
	Seconds    float64 `json:"seconds"`
}

// HTML renders the gallery: per prompt its image and question, then a
// table of completions with each reward.
func (g Gallery) HTML() string {
	var b strings.Builder
	fmt.Fprintf(&b, `<div class="mmft-gallery"><p>mean reward <b>%.3f</b> (%.1f s)</p>`, g.MeanReward, g.Seconds)
	for _, p := range g.Prompts {
		fmt.Fprintf(&b, `<div style="display:flex;gap:1em;margin-bottom:1em"><div>%s</div><div><p>%s<br>expected <b>%s</b></p><table><tr><th>completion</th><th>total</th>`,
			imgTag(p.Image, 200), esc(p.Question), esc(p.Answer))
		for _, n := range g.RewardNames {
			fmt.Fprintf(&b, "<th>%s</th>", esc(n))
		}
		b.WriteString("</tr>")
		for _, c := range p.Completions {
			fmt.Fprintf(&b, `<tr><td><pre style="white-space:pre-wrap;max-width:40em">%s</pre></td><td>%.3f</td>`, esc(p.Prefill+c.Text), c.Total)
			for _, v := range c.Rewards {
				fmt.Fprintf(&b, "<td>%.3f</td>", v)
			}
			b.WriteString("</tr>")
		}
		b.WriteString("</table></div></div>")
	}
	b.WriteString("</div>")
	return b.String()
}

// String renders the gallery for a terminal.
func (g Gallery) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "mean reward %.3f\n", g.MeanReward)
	for _, p := range g.Prompts {
		fmt.Fprintf(&b, "Q: %s (expected %s)\n", p.Question, p.Answer)
		for _, c := range p.Completions {
			fmt.Fprintf(&b, "  %.3f %q\n", c.Total, c.Text)
		}
	}
	return b.String()
}

// TrainEvent is a progress event of Session.Train: rollout progress within
// a step (Kind "rollout": Done of Total completions) or a finished step
// (Kind "step", with its Metrics).
type TrainEvent struct {
	Kind    string       `json:"kind"`
	Step    int          `json:"step"`
	Steps   int          `json:"steps"`
	Done    int          `json:"done"`
	Total   int          `json:"total"`
	Metrics grpo.Metrics `json:"metrics,omitempty"`
}

// TrainSummary is the result of Session.Train.
type TrainSummary struct {
	// StepsDone counts the run's steps so far (all Train calls).
	StepsDone int `json:"steps_done"`
	// History holds every step's metrics.
	History   []grpo.Metrics `json:"history"`
	OutputDir string         `json:"output_dir"`
	Seconds   float64        `json:"seconds"`
}

// Last returns the metrics of the last step (nil before any).
func (t TrainSummary) Last() grpo.Metrics {
	if len(t.History) == 0 {
		return nil
	}
	return t.History[len(t.History)-1]
}

// HTML renders the summary: steps, the first and last reward, and charts.
func (t TrainSummary) HTML() string {
	var b strings.Builder
	fmt.Fprintf(&b, `<div class="mmft-train"><p>%d steps in %s (%.1f s)</p>`, t.StepsDone, esc(t.OutputDir), t.Seconds)
	b.WriteString(ChartsHTML(t.History))
	b.WriteString("</div>")
	return b.String()
}

// ChartsHTML renders the reward chart and the KL and completion-length
// chart of history as inline SVG ("" before the first step).
func ChartsHTML(history []grpo.Metrics) string {
	if len(history) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString(`<div style="display:flex;flex-wrap:wrap">`)
	for _, c := range []interface{ SVG() ([]byte, error) }{RewardChartOf(history), CurvesChartOf(history)} {
		svg, err := c.SVG()
		if err != nil {
			fmt.Fprintf(&b, "<p>chart: %s</p>", esc(err.Error()))
			continue
		}
		fmt.Fprintf(&b, `<div style="width:420px">%s</div>`, svgBody(svg))
	}
	b.WriteString("</div>")
	return b.String()
}

// svgBody drops an XML prolog so the SVG can sit inside HTML.
func svgBody(svg []byte) string {
	s := string(svg)
	if i := strings.Index(s, "<svg"); i > 0 {
		s = s[i:]
	}
	return s
}

// ProgressHTML renders a progress bar for step of steps with the last
// metrics.
func ProgressHTML(step, steps int, m grpo.Metrics, note string) string {
	pct := 0.0
	if steps > 0 {
		pct = 100 * float64(step) / float64(steps)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<div class="mmft-progress"><progress value="%d" max="%d" style="width:30em"></progress> step %d/%d (%.0f%%)`, step, steps, step, steps, pct)
	if note != "" {
		fmt.Fprintf(&b, " · %s", esc(note))
	}
	if m != nil {
		for _, k := range []string{"reward", "kl", "completion_length", "step_s"} {
			if v, ok := m[k]; ok && !math.IsNaN(float64(v)) {
				fmt.Fprintf(&b, " · %s %.3f", k, float64(v))
			}
		}
	}
	b.WriteString("</div>")
	return b.String()
}

// SessionEvalOptions configure Session.Evaluate.
type SessionEvalOptions struct {
	EvalOptions
	// Base evaluates the base model rather than the session's adapter.
	Base bool `json:"base"`
	// Split is the split to answer (default "test", else "train").
	Split string `json:"split"`
}

// HTML renders an evaluation: the summary and a table of the answers.
func (r *EvalResult) HTML() string {
	var b strings.Builder
	fmt.Fprintf(&b, `<div class="mmft-eval"><table><tr><th>samples</th><th>accuracy</th><th>format rate</th><th>mean tokens</th></tr><tr><td>%d</td><td>%.1f%%</td><td>%.1f%%</td><td>%.1f</td></tr></table>`,
		r.Samples, 100*r.Accuracy, 100*r.FormatRate, r.MeanTokens)
	b.WriteString(`<table><tr><th>#</th><th>question</th><th>gold</th><th>predicted</th><th>ok</th><th>format</th><th>output</th></tr>`)
	for _, x := range r.Records {
		fmt.Fprintf(&b, `<tr><td>%d</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td><pre style="white-space:pre-wrap;max-width:30em">%s</pre></td></tr>`,
			x.Index, esc(x.Question), esc(x.Gold), esc(x.Predicted), mark(x.Correct), mark(x.Formatted), esc(x.Output))
	}
	b.WriteString("</table></div>")
	return b.String()
}

// String renders the evaluation's summary for a terminal.
func (r *EvalResult) String() string {
	return fmt.Sprintf("samples %d  accuracy %.1f%%  format rate %.1f%%  mean tokens %.1f\n", r.Samples, 100*r.Accuracy, 100*r.FormatRate, r.MeanTokens)
}

// CompareHTML renders two evaluations side by side: summary rows and, per
// sample, both outputs.
func CompareHTML(beforeName string, before *EvalResult, afterName string, after *EvalResult) string {
	var b strings.Builder
	b.WriteString(`<div class="mmft-compare"><table><tr><th></th><th>accuracy</th><th>format rate</th><th>mean tokens</th></tr>`)
	for _, r := range []struct {
		name string
		e    *EvalResult
	}{{beforeName, before}, {afterName, after}} {
		fmt.Fprintf(&b, "<tr><td>%s</td><td>%.1f%%</td><td>%.1f%%</td><td>%.1f</td></tr>", esc(r.name), 100*r.e.Accuracy, 100*r.e.FormatRate, r.e.MeanTokens)
	}
	fmt.Fprintf(&b, `</table><table><tr><th>question</th><th>gold</th><th>%s</th><th>%s</th></tr>`, esc(beforeName), esc(afterName))
	for i := 0; i < min(len(before.Records), len(after.Records)); i++ {
		x, y := before.Records[i], after.Records[i]
		fmt.Fprintf(&b, `<tr><td>%s</td><td>%s</td><td><pre style="white-space:pre-wrap;max-width:25em">%s</pre>%s</td><td><pre style="white-space:pre-wrap;max-width:25em">%s</pre>%s</td></tr>`,
			esc(x.Question), esc(x.Gold), esc(x.Output), mark(x.Correct), esc(y.Output), mark(y.Correct))
	}
	b.WriteString("</table></div>")
	return b.String()
}

// AdapterInfo describes a saved or loaded adapter.
type AdapterInfo struct {
	Dir     string   `json:"dir"`
	Modules int      `json:"modules"`
	Params  int      `json:"params"`
	Rank    int      `json:"rank"`
	Files   []string `json:"files"`
}

// DeviceStatus lists the devices and their memory.
type DeviceStatus struct {
	// Device is "cpu" or "gpu"; Source says where the figures come from
	// (cuda, nvidia-smi, host).
	Device  string      `json:"device"`
	Source  string      `json:"source"`
	Devices []DeviceMem `json:"devices"`
}

// DeviceMem is one device's memory.
type DeviceMem struct {
	Index int    `json:"index"`
	Name  string `json:"name"`
	// UsedBytes and FreeBytes (0 when unknown), TotalBytes.
	UsedBytes  int64 `json:"used_bytes"`
	FreeBytes  int64 `json:"free_bytes"`
	TotalBytes int64 `json:"total_bytes"`
}

// HTML renders the devices as a table.
func (d DeviceStatus) HTML() string {
	var b strings.Builder
	fmt.Fprintf(&b, `<table class="mmft-devices"><tr><th>#</th><th>%s device</th><th>used</th><th>free</th><th>total</th></tr>`, esc(d.Device))
	for _, x := range d.Devices {
		fmt.Fprintf(&b, "<tr><td>%d</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>", x.Index, esc(x.Name), gib(x.UsedBytes), gib(x.FreeBytes), gib(x.TotalBytes))
	}
	fmt.Fprintf(&b, `</table><small>source: %s</small>`, esc(d.Source))
	return b.String()
}

// String renders the devices for a terminal.
func (d DeviceStatus) String() string {
	var b strings.Builder
	for _, x := range d.Devices {
		fmt.Fprintf(&b, "%s %d %s: used %s, free %s of %s\n", d.Device, x.Index, x.Name, gib(x.UsedBytes), gib(x.FreeBytes), gib(x.TotalBytes))
	}
	return b.String()
}

func gib(n int64) string { return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30)) }

func esc(s string) string { return html.EscapeString(s) }

func mark(ok bool) string {
	if ok {
		return "✔"
	}
	return "✘"
}

func imgTag(uri string, width int) string {
	if uri == "" {
		return "(no image)"
	}
	return fmt.Sprintf(`<img src="%s" style="max-width:%dpx">`, uri, width)
}

// dataURI encodes an image file's bytes as a data URI.
func dataURI(img []byte, format string) string {
	if len(img) == 0 {
		return ""
	}
	mime := "image/png"
	switch strings.ToLower(format) {
	case "jpeg", "jpg":
		mime = "image/jpeg"
	case "gif":
		mime = "image/gif"
	case "webp":
		mime = "image/webp"
	case "bmp":
		mime = "image/bmp"
	}
	return "data:" + mime + ";base64," + base64.StdEncoding.EncodeToString(img)
}

func sortedKeys(m map[string]int64) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
