package kernel

import (
	"context"
	"os/exec"
	"regexp"
	"strings"
	"time"
)

// inspectTimeout bounds `go doc` for one inspect_request.
const inspectTimeout = 30 * time.Second

// docName matches a Go name such as fmt.Println, strings.Builder.WriteString or x.
var docName = regexp.MustCompile(`^[\pL_][\pL\pN_]*(\.[\pL_][\pL\pN_]*)*$`)

// inspect answers inspect_request: the source of a kept declaration named at the
// cursor, else `go doc` of the name (standard library, mmft, gonbui).
func (k *server) inspect(ctx context.Context, content map[string]any) map[string]any {
	code, _ := content["code"].(string)
	runes := []rune(code)
	pos := len(runes)
	if v, ok := content["cursor_pos"].(float64); ok && v >= 0 && int(v) <= len(runes) {
		pos = int(v)
	}
	isName := func(r rune) bool { return r == '_' || r == '.' || isLetterOrDigit(r) }
	start, end := pos, pos
	for start > 0 && isName(runes[start-1]) {
		start--
	}
	for end < len(runes) && isName(runes[end]) {
		end++
	}
	name := strings.Trim(string(runes[start:end]), ".")
	reply := map[string]any{"status": "ok", "found": false, "data": map[string]any{}, "metadata": map[string]any{}}
	if !docName.MatchString(name) {
		return reply
	}
	for _, u := range k.exec.state.units {
		for _, key := range u.keys {
			if key == "name:"+name || strings.HasSuffix(key, "."+name) && strings.HasPrefix(key, "method:") {
				reply["found"] = true
				reply["data"] = map[string]any{"text/plain": u.text}
				return reply
			}
		}
	}
	if pkg, sym, ok := strings.Cut(name, "."); ok {
		if spec, has := k.importFor(pkg); has {
			name = spec + "." + sym
		}
	}
	ctx, cancel := context.WithTimeout(ctx, inspectTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "doc", name)
	cmd.Dir, cmd.Env = k.exec.ws.cellDir, k.exec.ws.env
	out, err := cmd.Output()
	if err != nil || len(strings.TrimSpace(string(out))) == 0 {
		return reply
	}
	reply["found"] = true
	reply["data"] = map[string]any{"text/plain": string(out)}
	return reply
}

// importFor returns the import path a kept import names pkg by.
func (k *server) importFor(pkg string) (string, bool) {
	for path, spec := range k.exec.state.imports {
		name := path[strings.LastIndex(path, "/")+1:]
		if alias, _, ok := strings.Cut(spec, " "); ok {
			name = alias
		}
		if name == pkg {
			return path, true
		}
	}
	return "", false
}
