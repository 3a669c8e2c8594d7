// Package chattemplate renders chat messages into the prompt text of the
// Qwen2-VL chat template, exactly as transformers' apply_chat_template does.
//
// No Jinja engine is used: the template text of the model folder is compared
// with the known Qwen2-VL template and rendered by a native Go renderer; any
// other template is refused with an error rather than rendered wrongly.
//
//	tmpl, err := chattemplate.Load(modelDir)
//	prompt, err := tmpl.Render([]chattemplate.Message{
//		chattemplate.System("You are a helpful assistant."),
//		chattemplate.User(chattemplate.Image(), chattemplate.Text("What is the net income?")),
//		chattemplate.Assistant("Let me think."),
//	}, chattemplate.Options{ContinueFinalMessage: true})
//
// Each image part renders as <|vision_start|><|image_pad|><|vision_end|> and
// each video part as <|vision_start|><|video_pad|><|vision_end|>; expanding the
// pad token to the number of vision patches is the processor's job.
package chattemplate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode"
)

// Qwen2VLTemplate is the chat template of Qwen2-VL-2B/7B/72B-Instruct, as in
// their chat_template.json and tokenizer_config.json.
const Qwen2VLTemplate = "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"

// DefaultSystemPrompt is what the template inserts as the system message when
// the first message is not a system one.
const DefaultSystemPrompt = "You are a helpful assistant."

// Template is a recognised chat template, ready to render.
type Template struct {
	source string
}

// Options are the apply_chat_template switches the template understands.
type Options struct {
	// AddGenerationPrompt appends "<|im_start|>assistant\n".
	AddGenerationPrompt bool
	// ContinueFinalMessage leaves the final message open (no "<|im_end|>\n"
	// after it) so that generation continues it: the rendered text is cut
	// where the final message's text ends, as transformers does.
	ContinueFinalMessage bool
	// AddVisionID prefixes each image with "Picture N: " and each video with
	// "Video N: ".
	AddVisionID bool
}

// Parse recognises template source text. Only the Qwen2-VL template is
// supported; any other text gets an error naming the problem.
func Parse(source string) (*Template, error) {
	// Jinja drops a single trailing newline of the template.
	s := strings.TrimSuffix(source, "\n")
	if s != Qwen2VLTemplate {
		return nil, fmt.Errorf("chattemplate: unsupported chat template (%d bytes, starting %q): only the Qwen2-VL template is implemented, by a native renderer; use a Qwen2-VL model folder", len(source), head(source, 60))
	}
	return &Template{source: source}, nil
}

func head(s string, n int) string {
	r := []rune(s)
	if len(r) > n {
		return string(r[:n]) + "..."
	}
	return s
}

// Source returns the template text as read.
func (t *Template) Source() string { return t.source }

// Load reads the chat template of a model folder, from the first of
// chat_template.jinja, chat_template.json ("chat_template" field) and
// tokenizer_config.json ("chat_template" field) that exists, and recognises it.
func Load(modelDir string) (*Template, error) {
	if st, err := os.Stat(modelDir); err != nil {
		return nil, fmt.Errorf("chattemplate: model folder: %w", err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("chattemplate: %s is not a folder; pass the model folder", modelDir)
	}
	if data, err := os.ReadFile(filepath.Join(modelDir, "chat_template.jinja")); err == nil {
		return Parse(string(data))
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("chattemplate: %w", err)
	}
	for _, name := range []string{"chat_template.json", "tokenizer_config.json"} {
		path := filepath.Join(modelDir, name)
		data, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("chattemplate: %w", err)
		}
		src, err := templateField(data)
		if err != nil {
			return nil, fmt.Errorf("chattemplate: %s: %w", path, err)
		}
		if src == "" {
			continue
		}
		t, err := Parse(src)
		if err != nil {
			return nil, fmt.Errorf("%w (from %s)", err, path)
		}
		return t, nil
	}
	return nil, fmt.Errorf("chattemplate: %s has no chat template (looked in chat_template.jinja, chat_template.json and tokenizer_config.json)", modelDir)
}

// templateField extracts "chat_template" from a JSON config: a string, or a
// list of {"name", "template"} from which "default" is taken.
func templateField(data []byte) (string, error) {
	var cfg struct {
		ChatTemplate json.RawMessage `json:"chat_template"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return "", fmt.Errorf("not valid JSON: %w", err)
	}
	if len(cfg.ChatTemplate) == 0 || isNull(cfg.ChatTemplate) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(cfg.ChatTemplate, &s); err == nil {
		return s, nil
	}
	var named []struct {
		Name     string `json:"name"`
		Template string `json:"template"`
	}
	if err := json.Unmarshal(cfg.ChatTemplate, &named); err != nil {
		return "", fmt.Errorf("chat_template must be a string or a list of {\"name\", \"template\"}: %w", err)
	}
	for _, n := range named {
		if n.Name == "default" {
			return n.Template, nil
		}
	}
	return "", fmt.Errorf("chat_template lists named templates but none is called \"default\"")
}

// Render renders msgs as transformers' apply_chat_template(msgs,
// tokenize=False, ...) does with this template.
func (t *Template) Render(msgs []Message, opts Options) (string, error) {
	if opts.ContinueFinalMessage && opts.AddGenerationPrompt {
		return "", errors.New("chattemplate: ContinueFinalMessage and AddGenerationPrompt cannot both be set: one continues the final message, the other starts a new one")
	}
	var b strings.Builder
	images, videos := 0, 0
	for i, m := range msgs {
		if m.Role == "" {
			return "", fmt.Errorf("chattemplate: message %d has no role; give \"system\", \"user\" or \"assistant\"", i+1)
		}
		if i == 0 && m.Role != "system" {
			b.WriteString("<|im_start|>system\n" + DefaultSystemPrompt + "<|im_end|>\n")
		}
		b.WriteString("<|im_start|>")
		b.WriteString(m.Role)
		b.WriteString("\n")
		for _, p := range m.Content {
			switch {
			case p.IsImage():
				images++
				if opts.AddVisionID {
					fmt.Fprintf(&b, "Picture %d: ", images)
				}
				b.WriteString("<|vision_start|><|image_pad|><|vision_end|>")
			case p.IsVideo():
				videos++
				if opts.AddVisionID {
					fmt.Fprintf(&b, "Video %d: ", videos)
				}
				b.WriteString("<|vision_start|><|video_pad|><|vision_end|>")
			case p.HasText():
				b.WriteString(p.Text)
			}
		}
		b.WriteString("<|im_end|>\n")
	}
	if opts.AddGenerationPrompt {
		b.WriteString("<|im_start|>assistant\n")
	}
	out := b.String()
	if opts.ContinueFinalMessage {
		return continueFinal(out, msgs)
	}
	return out, nil
}

// continueFinal cuts rendered after the final message's text, following
// transformers: find the last occurrence of the stripped text and keep it,
// with its trailing white space when the template kept that.
func continueFinal(rendered string, msgs []Message) (string, error) {
	if len(msgs) == 0 {
		return "", errors.New("chattemplate: ContinueFinalMessage needs at least one message")
	}
	last := msgs[len(msgs)-1]
	final, found := "", false
	for i := len(last.Content) - 1; i >= 0; i-- {
		if p := last.Content[i]; p.HasText() {
			final, found = p.Text, true
			break
		}
	}
	if !found {
		return "", fmt.Errorf("chattemplate: ContinueFinalMessage is set but the final (%s) message has no text to continue", last.Role)
	}
	stripped := strings.TrimFunc(final, pyIsSpace)
	loc := strings.LastIndex(rendered, stripped)
	if loc < 0 {
		return "", errors.New("chattemplate: ContinueFinalMessage is set but the final message does not appear in the rendered chat")
	}
	if strings.HasPrefix(rendered[loc:], final) {
		return rendered[:loc+len(final)], nil
	}
	return rendered[:loc+len(stripped)], nil
}

// pyIsSpace is Python's str.isspace for one character, which str.strip uses.
func pyIsSpace(r rune) bool { return unicode.IsSpace(r) || (r >= 0x1C && r <= 0x1F) }
