package hub

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Kinds of failure, for errors.Is. Every error hub returns that comes from
// the Hub or the cache wraps one of these.
var (
	// ErrNotFound: the repository, revision or file does not exist (HTTP 404).
	ErrNotFound = errors.New("not found")
	// ErrUnauthorized: the repository is private or gated and no token, or a
	// token without access, was given (HTTP 401/403).
	ErrUnauthorized = errors.New("unauthorized")
	// ErrNetwork: the Hub could not be reached.
	ErrNetwork = errors.New("network error")
	// ErrNotCached: offline mode is on and what was asked for is not in the cache.
	ErrNotCached = errors.New("not in the cache")
	// ErrCorrupt: a download did not match its announced size or checksum.
	ErrCorrupt = errors.New("corrupt download")
	// ErrProtocol: the Hub answered something hub does not understand.
	ErrProtocol = errors.New("unexpected answer from the Hub")
)

// Error is a failure with a kind (one of the Err* values) and a message that
// says what failed and how to fix it.
type Error struct {
	Kind  error
	Msg   string
	Cause error
}

// Error returns the message, followed by the cause if any.
func (e *Error) Error() string {
	if e.Cause != nil {
		return e.Msg + ": " + e.Cause.Error()
	}
	return e.Msg
}

// Unwrap exposes both the kind and the cause to errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	out := []error{e.Kind}
	if e.Cause != nil {
		out = append(out, e.Cause)
	}
	return out
}

func newErr(kind error, cause error, format string, args ...any) error {
	return &Error{Kind: kind, Msg: "hub: " + fmt.Sprintf(format, args...), Cause: cause}
}

// what names the thing a request was about, for error messages.
type what struct {
	repoType, repoID, revision, file string
}

func (w what) repo() string {
	if w.repoType == Model || w.repoType == "" {
		return "model " + w.repoID
	}
	return w.repoType + " " + w.repoID
}

// statusError turns a non-success response of the Hub into an error naming
// the repository, revision or file, and the fix.
func (s *settings) statusError(resp *http.Response, w what) error {
	code := resp.Header.Get("X-Error-Code")
	msg := strings.TrimSpace(resp.Header.Get("X-Error-Message"))
	detail := ""
	if msg != "" {
		detail = " (the Hub says: " + msg + ")"
	}
	tokenHint := "set HF_TOKEN to an access token (https://huggingface.co/settings/tokens)"
	if s.Token != "" {
		tokenHint = "check that the token in HF_TOKEN is valid and has read access"
	}
	switch {
	case code == "GatedRepo" || (resp.StatusCode == http.StatusForbidden && code != "RepoNotFound"):
		return newErr(ErrUnauthorized, nil, "%s is gated or private: request access on %s/%s and %s%s",
			w.repo(), s.Endpoint, repoURLPath(w.repoType, w.repoID), tokenHint, detail)
	case resp.StatusCode == http.StatusUnauthorized:
		return newErr(ErrUnauthorized, nil, "%s was refused (HTTP 401): it does not exist, or it is private or gated; if you have access, %s%s",
			w.repo(), tokenHint, detail)
	case code == "RevisionNotFound":
		return newErr(ErrNotFound, nil, "revision %q of %s not found (check --revision)%s", w.revision, w.repo(), detail)
	case code == "EntryNotFound":
		return newErr(ErrNotFound, nil, "file %q not found in %s at revision %q%s", w.file, w.repo(), w.revision, detail)
	case code == "RepoNotFound":
		return newErr(ErrNotFound, nil, "%s not found (check the id; for a dataset pass --dataset / RepoType=dataset; if it is private, %s)%s",
			w.repo(), tokenHint, detail)
	case resp.StatusCode == http.StatusNotFound:
		target := w.repo() + " at revision " + fmt.Sprintf("%q", w.revision)
		if w.file != "" {
			target = fmt.Sprintf("file %q of %s", w.file, target)
		}
		return newErr(ErrNotFound, nil, "%s not found (HTTP 404)%s", target, detail)
	default:
		return newErr(ErrProtocol, nil, "%s %s answered HTTP %d%s", resp.Request.Method, redactURL(resp.Request.URL.String()), resp.StatusCode, detail)
	}
}

// redactURL drops the query string (CDN URLs carry signatures).
func redactURL(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i] + "?…"
	}
	return u
}
