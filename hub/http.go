package hub

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
)

const userAgent = "mmft-hub/1 (Go; like huggingface_hub)"

// maxRedirects bounds redirect chains.
const maxRedirects = 10

func repoURLPath(repoType, repoID string) string {
	switch repoType {
	case Dataset:
		return "datasets/" + repoID
	case Space:
		return "spaces/" + repoID
	}
	return repoID
}

func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

// resolveURL is the URL of one file at one revision ({endpoint}/{repo}/resolve/{rev}/{path}).
func (s *settings) resolveURL(repoID, revision, file string) string {
	return s.Endpoint + "/" + repoURLPath(s.RepoType, repoID) + "/resolve/" + url.PathEscape(revision) + "/" + escapePath(file)
}

// revisionURL is the API URL giving a revision's commit and file list.
func (s *settings) revisionURL(repoID, revision string) string {
	return s.Endpoint + "/api/" + s.RepoType + "s/" + repoID + "/revision/" + url.PathEscape(revision)
}

func defaultPort(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if u.Scheme == "https" {
		return "443"
	}
	return "80"
}

// sameOrigin reports whether a and b share scheme, host and port.
func sameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) && strings.EqualFold(a.Hostname(), b.Hostname()) && defaultPort(a) == defaultPort(b)
}

// do sends a request and follows redirects itself: relative ones always,
// absolute ones (to a CDN) only when followAbsolute. The token goes only to
// the endpoint's origin, so a redirect to another host never carries it.
func (s *settings) do(ctx context.Context, method, rawURL string, hdr http.Header, followAbsolute bool) (*http.Response, error) {
	target, err := url.Parse(rawURL)
	if err != nil {
		return nil, newErr(ErrProtocol, err, "bad URL %q", redactURL(rawURL))
	}
	for range maxRedirects + 1 {
		req, err := http.NewRequestWithContext(ctx, method, target.String(), nil)
		if err != nil {
			return nil, newErr(ErrProtocol, err, "bad URL %q", redactURL(target.String()))
		}
		for k, v := range hdr {
			req.Header[k] = v
		}
		req.Header.Set("User-Agent", userAgent)
		if s.Token != "" && sameOrigin(target, s.endpoint) {
			req.Header.Set("Authorization", "Bearer "+s.Token)
		}
		resp, err := s.client.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, newErr(ErrNetwork, err, "cannot reach %s (is the network down? set HF_HUB_OFFLINE=1 to use only the cache, or HF_ENDPOINT for a mirror)", target.Scheme+"://"+target.Host)
		}
		loc := resp.Header.Get("Location")
		if resp.StatusCode < 300 || resp.StatusCode > 399 || loc == "" {
			return resp, nil
		}
		next, err := target.Parse(loc)
		if err != nil {
			resp.Body.Close()
			return nil, newErr(ErrProtocol, err, "bad redirect Location %q from %s", redactURL(loc), redactURL(target.String()))
		}
		relative := !strings.Contains(loc, "://") && !strings.HasPrefix(loc, "//")
		if !relative && !followAbsolute {
			return resp, nil
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		target = next
	}
	return nil, newErr(ErrProtocol, errors.New("too many redirects"), "%s %s", method, redactURL(rawURL))
}
