package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/mmft-go/mmft/tokenizer"
)

// tokenizeBatch is how many lines are encoded together (in parallel).
const tokenizeBatch = 256

func runTokenize(c *cli, args []string) error {
	fs := c.newFlags("tokenize", "--model DIR [--skip-special] < lines.jsonl", `
Reads JSON lines {"text": "..."} from stdin and writes, for each, a JSON line
{"ids": [...], "decoded": "..."} with the ids of the model's tokenizer (as Hugging
Face's with add_special_tokens=False) and the decoding of those ids. Blank lines
are skipped. A malformed line gets {"line": N, "error": "..."} in its place on
stdout and a message naming line N on stderr; the other lines are still
tokenized, and the command then fails.`)
	model := fs.String("model", "", "model folder or Hub id holding tokenizer.json, or vocab.json + merges.txt + tokenizer_config.json")
	skipSpecial := fs.Bool("skip-special", false, "leave special tokens out of \"decoded\"")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	if *model == "" {
		fmt.Fprintln(c.stderr, "mmft tokenize: --model DIR is required (the model folder with the tokenizer files)")
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(c.stderr, "mmft tokenize: unexpected argument %q; the texts are read from stdin\n", fs.Arg(0))
		return errUsage
	}
	dir, err := c.resolveModel(*model, "*.json", "*.txt")
	if err != nil {
		return err
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		return err
	}
	out := bufio.NewWriter(c.stdout)
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)

	type pending struct {
		line int
		text string
		err  error
	}
	var batch []pending
	var bad []int
	flush := func() error {
		texts := make([]string, 0, len(batch))
		for _, p := range batch {
			if p.err == nil {
				texts = append(texts, p.text)
			}
		}
		ids := tok.EncodeBatch(texts)
		k := 0
		for _, p := range batch {
			var rec any
			if p.err != nil {
				fmt.Fprintf(c.stderr, "mmft tokenize: line %d: %v\n", p.line, p.err)
				rec = lineError{Line: p.line, Error: p.err.Error()}
			} else {
				rec = struct {
					IDs     []int  `json:"ids"`
					Decoded string `json:"decoded"`
				}{ids[k], tok.Decode(ids[k], *skipSpecial)}
				k++
			}
			if err := enc.Encode(rec); err != nil {
				return fmt.Errorf("writing output: %w", err)
			}
		}
		batch = batch[:0]
		return nil
	}

	r := bufio.NewReader(c.stdin)
	for line := 1; ; line++ {
		if err := c.ctx.Err(); err != nil {
			return err
		}
		raw, readErr := r.ReadBytes('\n')
		if readErr != nil && !errors.Is(readErr, io.EOF) {
			return fmt.Errorf("reading stdin at line %d: %w", line, readErr)
		}
		if s := bytes.TrimSpace(raw); len(s) > 0 {
			text, err := parseTextLine(s)
			if err != nil {
				bad = append(bad, line)
			}
			batch = append(batch, pending{line: line, text: text, err: err})
			if len(batch) >= tokenizeBatch {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if readErr != nil {
			break
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if err := out.Flush(); err != nil {
		return fmt.Errorf("writing output: %w", err)
	}
	if len(bad) > 0 {
		return fmt.Errorf("%d malformed input line(s) (first: line %d); each must be a JSON object {\"text\": \"...\"}", len(bad), bad[0])
	}
	return nil
}

// parseTextLine reads one input line, a JSON object with a string "text".
func parseTextLine(s []byte) (string, error) {
	var rec map[string]json.RawMessage
	if err := json.Unmarshal(s, &rec); err != nil || rec == nil {
		if !json.Valid(s) {
			return "", fmt.Errorf("not a JSON object {\"text\": \"...\"}: %v", err)
		}
		return "", fmt.Errorf("not a JSON object {\"text\": \"...\"}: got %.40s", s)
	}
	raw, ok := rec["text"]
	if !ok {
		if len(rec) == 0 {
			return "", errors.New("no \"text\" field (the object is empty)")
		}
		return "", fmt.Errorf("no \"text\" field (fields: %s)", strings.Join(slices.Sorted(maps.Keys(rec)), ", "))
	}
	var text string
	if err := json.Unmarshal(raw, &text); err != nil || string(raw) == "null" {
		return "", fmt.Errorf("\"text\" must be a string, got %s", raw)
	}
	return text, nil
}
