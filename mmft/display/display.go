// Package display shows the results of package mmft in a notebook cell:
// HTML through GoNB's display pipe (gonbui) when the cell runs under the
// Jupyter kernel, plain text on standard output otherwise (an exported
// notebook, a terminal). Train shows a progress bar and the reward, KL and
// completion-length charts, updated in place as steps finish.
//
// Package mmft itself does not import gonbui, so plain programs do not
// need it; cells import this package beside mmft.
package display

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/janpfeifer/gonb/gonbui"

	"github.com/mmft-go/mmft/grpo"
	"github.com/mmft-go/mmft/mmft"
)

// Viewable is a result with an HTML rendering (every mmft result is one).
type Viewable interface {
	HTML() string
}

// InNotebook reports whether displays go to a notebook.
func InNotebook() bool { return gonbui.IsNotebook }

// Show displays v: its HTML in a notebook, else its String method (or
// %+v) on standard output.
func Show(v Viewable) {
	if gonbui.IsNotebook {
		gonbui.DisplayHTML(v.HTML())
		return
	}
	if s, ok := v.(fmt.Stringer); ok {
		fmt.Print(s.String())
		return
	}
	fmt.Printf("%+v\n", v)
}

// HTML displays an HTML fragment in a notebook (nothing elsewhere).
func HTML(html string) {
	if gonbui.IsNotebook {
		gonbui.DisplayHTML(html)
	}
}

// Check stops the cell with err when it is not nil: the cell fails with
// the error's text, as Jupyter shows a failed cell.
func Check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		panic(err)
	}
}

// Compare shows two evaluations side by side.
func Compare(beforeName string, before *mmft.EvalResult, afterName string, after *mmft.EvalResult) {
	if gonbui.IsNotebook {
		gonbui.DisplayHTML(mmft.CompareHTML(beforeName, before, afterName, after))
		return
	}
	fmt.Printf("%s: %s%s: %s", beforeName, before.String(), afterName, after.String())
}

// updateEvery bounds how often rollout progress redraws the display.
const updateEvery = 500 * time.Millisecond

// Train runs steps more training steps of s with a live display: a
// progress bar with the last step's reward, KL and completion length, and
// the reward and KL/length charts, updated in place after every step (in
// a terminal, one line per step). Interrupting the cell stops training
// after the current step is checkpointed.
func Train(ctx context.Context, s *mmft.Session, steps int) (mmft.TrainSummary, error) {
	id := "mmft-train-" + gonbui.UniqueID()
	history, err := s.History(ctx)
	if err != nil {
		return mmft.TrainSummary{}, err
	}
	var last grpo.Metrics
	if len(history) > 0 {
		last = history[len(history)-1]
	}
	start := len(history)
	var drawn time.Time
	draw := func(step, total int, note string) {
		if !gonbui.IsNotebook {
			return
		}
		gonbui.UpdateHTML(id, mmft.ProgressHTML(step-start, total-start, last, note)+mmft.ChartsHTML(history))
		drawn = time.Now()
	}
	draw(start, start+steps, "starting (the first step compiles the programs)")
	sum, err := s.Train(ctx, steps, func(e mmft.TrainEvent) {
		switch e.Kind {
		case "step":
			history = append(history, e.Metrics)
			last = e.Metrics
			draw(e.Step, e.Steps, "")
			if !gonbui.IsNotebook {
				fmt.Printf("step %d/%d reward %.4f kl %.4g completion_length %.1f\n", e.Step, e.Steps,
					float64(e.Metrics["reward"]), float64(e.Metrics["kl"]), float64(e.Metrics["completion_length"]))
			}
		case "rollout":
			if time.Since(drawn) >= updateEvery {
				draw(e.Step, e.Steps, fmt.Sprintf("step %d: rollouts %d/%d", e.Step+1, e.Done, e.Total))
			}
		}
	})
	if len(sum.History) > 0 {
		history = sum.History
	}
	note := fmt.Sprintf("done in %.1f s", sum.Seconds)
	if err != nil {
		note = "stopped: " + err.Error()
	}
	if gonbui.IsNotebook {
		gonbui.UpdateHTML(id, mmft.ProgressHTML(len(history)-start, steps, lastOf(history), note)+mmft.ChartsHTML(history))
	}
	return sum, err
}

func lastOf(h []grpo.Metrics) grpo.Metrics {
	if len(h) == 0 {
		return nil
	}
	return h[len(h)-1]
}

// Context returns a context that is cancelled when the cell is
// interrupted (SIGINT or SIGTERM): pass it to the session's methods so an
// interrupt cancels the command in the worker, which stays healthy.
func Context() context.Context {
	ctx, _ := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	return ctx
}
