// Command browser runs a notebook through Jupyter Notebook's own page in
// headless Chromium, driven over the Chrome DevTools protocol (chromedp): it
// opens the notebook, waits for the kernel, checks that no cell has an output
// yet, presses Cell ▸ Run All, waits until every code cell has run and the
// kernel is idle, fails on an error output, checks that the page shows the
// expected outputs, numbered 1…n by this session's kernel, and saves a full-page
// screenshot (PNG) and the outputs' HTML.
//
//	browser --url 'http://127.0.0.1:8888/notebooks/ui.ipynb?token=T' --screenshot out.png \
//	    --want '<img src="data:image/' --want 'image tokens'
//
// tests/notebooks/run.sh runs it against Debian's jupyter-notebook.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/chromedp/chromedp"
)

// wants collects the repeatable --want flag.
type wants []string

func (w *wants) String() string     { return strings.Join(*w, ", ") }
func (w *wants) Set(s string) error { *w = append(*w, s); return nil }

func main() {
	url := flag.String("url", "", "the notebook's page, with its ?token=")
	shot := flag.String("screenshot", "", "where to write the full-page PNG screenshot")
	domOut := flag.String("dom", "", "where to write the outputs' HTML (optional)")
	chromium := flag.String("chromium", "chromium", "the Chromium (or Chrome) program")
	timeout := flag.Duration("timeout", 10*time.Minute, "limit for the whole run")
	var want wants
	flag.Var(&want, "want", "text or HTML the outputs must contain (repeatable)")
	flag.Parse()
	if *url == "" || *shot == "" {
		fmt.Fprintln(os.Stderr, "browser: --url and --screenshot are required")
		os.Exit(2)
	}
	if err := run(*url, *shot, *domOut, *chromium, *timeout, want); err != nil {
		fmt.Fprintln(os.Stderr, "browser:", err)
		os.Exit(1)
	}
}

// pageState is what the page says about the notebook's code cells.
type pageState struct {
	Cells   int    `json:"cells"`   // code cells
	Counts  []any  `json:"counts"`  // their execution counts (null before a run, "*" while queued)
	Outputs int    `json:"outputs"` // output areas shown
	Errors  int    `json:"errors"`  // error outputs (model and DOM)
	Idle    bool   `json:"idle"`    // the kernel indicator says idle
	HTML    string `json:"html"`    // the outputs' HTML
	Text    string `json:"text"`    // the outputs' text
}

const stateJS = `(() => {
	const cells = Jupyter.notebook.get_cells().filter(c => c.cell_type === 'code');
	const areas = Array.from(document.querySelectorAll('#notebook .output_area'));
	const modelErrors = cells.reduce((n, c) => n + c.output_area.outputs.filter(o => o.output_type === 'error').length, 0);
	return {
		cells: cells.length,
		counts: cells.map(c => c.input_prompt_number === undefined ? null : c.input_prompt_number),
		outputs: areas.length,
		errors: Math.max(modelErrors, document.querySelectorAll('#notebook .output_error').length),
		idle: document.querySelector('#kernel_indicator_icon.kernel_idle_icon') !== null,
		html: areas.map(e => e.innerHTML).join('\n'),
		text: areas.map(e => e.textContent).join('\n'),
	};
})()`

// kernelReadyJS is true once the page has started a kernel and connected to it.
const kernelReadyJS = `window.Jupyter && Jupyter.notebook && Jupyter.notebook.kernel &&
	Jupyter.notebook.kernel.is_connected() &&
	document.querySelector('#kernel_indicator_icon.kernel_idle_icon') !== null`

// doneJS is true once every code cell has a number and the kernel is idle, or
// as soon as an error output shows.
const doneJS = `(() => {
	if (document.querySelector('#notebook .output_error')) return true;
	const cells = Jupyter.notebook.get_cells().filter(c => c.cell_type === 'code');
	return cells.every(c => typeof c.input_prompt_number === 'number') &&
		document.querySelector('#kernel_indicator_icon.kernel_idle_icon') !== null;
})()`

// unscrollJS makes the notebook's scrolling panel as tall as its content.
const unscrollJS = `(() => {
	for (const e of [document.documentElement, document.body, document.getElementById('site')]) {
		e.style.height = 'auto';
		e.style.overflow = 'visible';
	}
	window.scrollTo(0, 0);
})()`

func run(url, shot, domOut, chromium string, timeout time.Duration, want []string) error {
	profile, err := os.MkdirTemp("", "mmft-chromium-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(profile)
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.UserDataDir(profile), chromedp.WindowSize(1280, 1600), chromedp.Flag("hide-scrollbars", true))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, timeout)
	defer cancelTimeout()

	start := time.Now()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		return fmt.Errorf("open %s: %w", url, err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](kernelReadyJS, chromedp.WithPollingInterval(250*time.Millisecond),
		chromedp.WithPollingTimeout(2*time.Minute))); err != nil {
		return fmt.Errorf("the page started no kernel within 2 minutes: %w", err)
	}
	before, err := chromedp.Run(ctx, chromedp.Evaluate[pageState](stateJS))
	if err != nil {
		return fmt.Errorf("read the page: %w", err)
	}
	if before.Cells == 0 {
		return errors.New("the notebook has no code cell")
	}
	if before.Outputs != 0 || slices.ContainsFunc(before.Counts, func(c any) bool { return c != nil }) {
		return fmt.Errorf("the notebook shows outputs before Run All (%d output areas, counts %v): clear them first", before.Outputs, before.Counts)
	}
	fmt.Printf("browser: kernel ready after %.1f s; %d code cells, no outputs; pressing Cell > Run All\n", time.Since(start).Seconds(), before.Cells)

	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#celllink")), chromedp.Click(chromedp.CSS("#run_all_cells > a"), chromedp.NodeVisible)); err != nil {
		return fmt.Errorf("press Cell > Run All: %w", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](doneJS, chromedp.WithPollingInterval(time.Second),
		chromedp.WithPollingTimeout(0))); err != nil {
		st, _ := chromedp.Run(context.WithoutCancel(ctx), chromedp.Evaluate[pageState](stateJS))
		return fmt.Errorf("the cells did not finish (counts %v): %w", st.Counts, err)
	}
	after, err := chromedp.Run(ctx, chromedp.Evaluate[pageState](stateJS))
	if err != nil {
		return fmt.Errorf("read the page: %w", err)
	}
	fmt.Printf("browser: cells ran in %.1f s: counts %v, %d output areas\n", time.Since(start).Seconds(), after.Counts, after.Outputs)
	if domOut != "" {
		if err := os.WriteFile(domOut, []byte(after.HTML), 0o644); err != nil {
			return err
		}
	}

	// Screenshot before judging, so that a failure leaves the picture. The
	// notebook scrolls inside #site: let it grow to its full height instead,
	// so that the full-page screenshot holds every cell.
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](unscrollJS)); err != nil {
		return fmt.Errorf("lay the page out for the screenshot: %w", err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		return fmt.Errorf("screenshot: %w", err)
	}
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		return err
	}
	fmt.Printf("browser: screenshot %s (%d bytes)\n", shot, len(png))

	if after.Errors > 0 {
		return fmt.Errorf("%d error output(s):\n%s", after.Errors, after.Text)
	}
	for i, c := range after.Counts {
		if n, ok := c.(float64); !ok || int(n) != i+1 {
			return fmt.Errorf("execution counts %v: want 1…%d from this session's kernel", after.Counts, after.Cells)
		}
	}
	if after.Outputs == 0 {
		return errors.New("the cells ran but the page shows no output")
	}
	for _, w := range want {
		if !strings.Contains(after.HTML, w) && !strings.Contains(after.Text, w) {
			return fmt.Errorf("no output shows %q", w)
		}
	}
	fmt.Printf("browser: outputs show %q\n", want)
	return nil
}
