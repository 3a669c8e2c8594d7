package kernel

import (
	"strings"
	"sync"
	"unicode/utf8"
)

// streamWriter turns a cell's output bytes into text for Jupyter stream messages.
// It never splits a UTF-8 sequence between two messages: the bytes of a sequence
// cut by a write are held until the next write completes them. Bytes that are not
// UTF-8 become U+FFFD.
type streamWriter struct {
	mu      sync.Mutex
	pending []byte
	send    func(text string)
	// tail keeps the last tailMax bytes written, for the error report of a cell.
	tail    []byte
	tailMax int
}

func newStreamWriter(tailMax int, send func(string)) *streamWriter {
	return &streamWriter{send: send, tailMax: tailMax}
}

// Write implements io.Writer.
func (w *streamWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.tailMax > 0 {
		w.tail = append(w.tail, p...)
		if over := len(w.tail) - w.tailMax; over > 0 {
			w.tail = append(w.tail[:0], w.tail[over:]...)
		}
	}
	buf := append(w.pending, p...)
	cut := completePrefix(buf)
	w.pending = append([]byte(nil), buf[cut:]...)
	if cut > 0 {
		w.send(strings.ToValidUTF8(string(buf[:cut]), "\uFFFD"))
	}
	return len(p), nil
}

// Flush sends the bytes held back, which can only be an incomplete sequence now.
func (w *streamWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.pending) > 0 {
		w.send(strings.ToValidUTF8(string(w.pending), "\uFFFD"))
		w.pending = nil
	}
}

// Tail returns the last bytes written, as valid UTF-8.
func (w *streamWriter) Tail() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.ToValidUTF8(string(w.tail), "\uFFFD")
}

// completePrefix returns the length of b without a trailing UTF-8 sequence that
// more bytes could still complete. Invalid bytes count as complete (they are final).
func completePrefix(b []byte) int {
	// A sequence is at most utf8.UTFMax bytes: look at the last three bytes for a
	// lead byte whose sequence runs past the end.
	for back := 1; back <= utf8.UTFMax-1 && back <= len(b); back++ {
		c := b[len(b)-back]
		if c < 0x80 {
			return len(b) // ASCII: nothing pending
		}
		if c >= 0xC0 { // a lead byte
			need := 0
			switch {
			case c >= 0xF0 && c <= 0xF4:
				need = 4
			case c >= 0xE0:
				need = 3
			case c >= 0xC2:
				need = 2
			}
			if need > back && utf8.FullRune(b[len(b)-back:]) == false && validPrefix(b[len(b)-back:]) {
				return len(b) - back
			}
			return len(b)
		}
		// a continuation byte: keep looking for its lead
	}
	return len(b)
}

// validPrefix reports whether p (a lead byte and continuation bytes) could still
// become a valid UTF-8 sequence.
func validPrefix(p []byte) bool {
	for _, c := range p[1:] {
		if c&0xC0 != 0x80 {
			return false
		}
	}
	// Check the second byte's range for the leads that restrict it.
	if len(p) >= 2 {
		switch p[0] {
		case 0xE0:
			return p[1] >= 0xA0
		case 0xED:
			return p[1] <= 0x9F
		case 0xF0:
			return p[1] >= 0x90
		case 0xF4:
			return p[1] <= 0x8F
		}
	}
	return true
}
