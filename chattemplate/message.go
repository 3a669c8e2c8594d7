package chattemplate

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Part is one item of a message's content: text, an image or a video. Its JSON
// form is Hugging Face's: {"type": "text", "text": "..."}, {"type": "image"},
// {"type": "image", "image": "file:///path.png"}, {"type": "image_url",
// "image_url": {"url": "..."}}, {"type": "video", "video": "..."}.
type Part struct {
	Type string `json:"type,omitempty"`
	Text string `json:"text,omitempty"`
	// Image is the image's location (path or URL) when given; the template only
	// marks where the image goes.
	Image    string `json:"image,omitempty"`
	ImageURL string `json:"image_url,omitempty"`
	// Video is the video's location, VideoFrames its frames when given as a list.
	Video       string   `json:"video,omitempty"`
	VideoFrames []string `json:"-"`

	// keys records which keys the JSON object had, because the template tests
	// key presence ('image' in content); zero for parts built in Go.
	keys partKeys
}

type partKeys uint8

const (
	keyText partKeys = 1 << iota
	keyImage
	keyImageURL
	keyVideo
	keysFromJSON
)

// Text returns a text part.
func Text(s string) Part { return Part{Type: "text", Text: s} }

// Image returns an image placeholder part ({"type": "image"}).
func Image() Part { return Part{Type: "image"} }

// ImageAt returns an image part that records where the image is.
func ImageAt(location string) Part { return Part{Type: "image", Image: location} }

// Video returns a video placeholder part ({"type": "video"}).
func Video() Part { return Part{Type: "video"} }

// IsImage reports whether the template renders p as an image: its type is
// "image" or it has an "image" or "image_url" key.
func (p Part) IsImage() bool {
	if p.keys&keysFromJSON != 0 {
		return p.Type == "image" || p.keys&(keyImage|keyImageURL) != 0
	}
	return p.Type == "image" || p.Type == "image_url" || p.Image != "" || p.ImageURL != ""
}

// IsVideo reports whether the template renders p as a video (when it is not
// an image): its type is "video" or it has a "video" key.
func (p Part) IsVideo() bool {
	if p.keys&keysFromJSON != 0 {
		return p.Type == "video" || p.keys&keyVideo != 0
	}
	return p.Type == "video" || p.Video != "" || len(p.VideoFrames) > 0
}

// HasText reports whether p carries text (has a "text" key).
func (p Part) HasText() bool {
	if p.keys&keysFromJSON != 0 {
		return p.keys&keyText != 0
	}
	return p.Type == "text" || p.Text != ""
}

// UnmarshalJSON reads a part in Hugging Face's shape.
func (p *Part) UnmarshalJSON(data []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return fmt.Errorf("a content part must be a JSON object like {\"type\": \"text\", \"text\": \"...\"}: %w", err)
	}
	*p = Part{keys: keysFromJSON}
	str := func(key string, dst *string) error {
		v, ok := raw[key]
		if !ok || isNull(v) {
			return nil
		}
		if err := json.Unmarshal(v, dst); err != nil {
			return fmt.Errorf("content part %q must be a string: %w", key, err)
		}
		return nil
	}
	if err := str("type", &p.Type); err != nil {
		return err
	}
	if _, ok := raw["text"]; ok {
		p.keys |= keyText
		if err := str("text", &p.Text); err != nil {
			return err
		}
	}
	if _, ok := raw["image"]; ok {
		p.keys |= keyImage
		if err := str("image", &p.Image); err != nil {
			return err
		}
	}
	if v, ok := raw["image_url"]; ok {
		p.keys |= keyImageURL
		if err := json.Unmarshal(v, &p.ImageURL); err != nil {
			var obj struct {
				URL string `json:"url"`
			}
			if err2 := json.Unmarshal(v, &obj); err2 != nil && !isNull(v) {
				return fmt.Errorf("content part \"image_url\" must be a string or {\"url\": \"...\"}: %w", err2)
			}
			p.ImageURL = obj.URL
		}
	}
	if v, ok := raw["video"]; ok {
		p.keys |= keyVideo
		if err := json.Unmarshal(v, &p.Video); err != nil && !isNull(v) {
			if err2 := json.Unmarshal(v, &p.VideoFrames); err2 != nil {
				return fmt.Errorf("content part \"video\" must be a string or a list of frame paths: %w", err2)
			}
		}
	}
	return nil
}

// MarshalJSON writes p in Hugging Face's shape, keeping the keys the template
// tests ("text" even when empty, for a text part).
func (p Part) MarshalJSON() ([]byte, error) {
	m := map[string]any{}
	if p.Type != "" {
		m["type"] = p.Type
	}
	if p.HasText() {
		m["text"] = p.Text
	}
	if p.Image != "" || p.keys&keyImage != 0 {
		m["image"] = p.Image
	}
	if p.ImageURL != "" || p.keys&keyImageURL != 0 {
		m["image_url"] = map[string]string{"url": p.ImageURL}
	}
	switch {
	case len(p.VideoFrames) > 0:
		m["video"] = p.VideoFrames
	case p.Video != "" || p.keys&keyVideo != 0:
		m["video"] = p.Video
	}
	return json.Marshal(m)
}

func isNull(v json.RawMessage) bool { return string(bytes.TrimSpace(v)) == "null" }

// Message is one chat message. Content given as a plain string is held as a
// single text part, which the Qwen2-VL template renders identically.
type Message struct {
	Role    string `json:"role"`
	Content []Part `json:"content"`
}

// System returns a system message with text content.
func System(text string) Message { return Message{Role: "system", Content: []Part{Text(text)}} }

// User returns a user message with the given parts.
func User(parts ...Part) Message { return Message{Role: "user", Content: parts} }

// UserText returns a user message with text content.
func UserText(text string) Message { return User(Text(text)) }

// Assistant returns an assistant message with text content.
func Assistant(text string) Message { return Message{Role: "assistant", Content: []Part{Text(text)}} }

// UnmarshalJSON reads a message in Hugging Face's shape: content is a string
// or a list of parts.
func (m *Message) UnmarshalJSON(data []byte) error {
	var raw struct {
		Role    *string         `json:"role"`
		Content json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return fmt.Errorf("a message must be a JSON object {\"role\": ..., \"content\": ...}: %w", err)
	}
	if raw.Role == nil {
		return fmt.Errorf("message has no \"role\"; give \"system\", \"user\" or \"assistant\"")
	}
	*m = Message{Role: *raw.Role}
	c := bytes.TrimSpace(raw.Content)
	switch {
	case len(c) == 0:
		// Absent content renders as empty, as in transformers.
	case isNull(c):
		return fmt.Errorf("message %q has null content; give a string or a list of parts", m.Role)
	case c[0] == '"':
		var s string
		if err := json.Unmarshal(c, &s); err != nil {
			return fmt.Errorf("message %q content: %w", m.Role, err)
		}
		m.Content = []Part{Text(s)}
	case c[0] == '[':
		if err := json.Unmarshal(c, &m.Content); err != nil {
			return fmt.Errorf("message %q content: %w", m.Role, err)
		}
	default:
		return fmt.Errorf("message %q content must be a string or a list of parts, got %s", m.Role, short(c))
	}
	return nil
}

func short(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}
