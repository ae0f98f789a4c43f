package machine

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReadmeSnippetMatchesGo runs the Python signer printed in README.md
// against Go's Sign, so the documented algorithm cannot drift from the code.
func TestReadmeSnippetMatchesGo(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	readme, err := os.ReadFile(filepath.Join(pythonClient(t), "..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := bytes.Cut(readme, []byte("Its core:\n\n```python\n"))
	snippet, _, ok2 := bytes.Cut(after, []byte("```"))
	if !ok || !ok2 {
		t.Fatal("README.md has no python signing snippet after \"Its core:\"")
	}
	const keyID, secret, nonce = "ak_0123456789abcdef", "authd_sk_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG", "nonce_0123456789-abc"
	ts := time.Unix(1795316400, 0)
	var urls [][2]string
	var want []string
	for _, v := range signVectors {
		h, err := Sign(v.method, v.url, keyID, []byte(secret), ts, nonce)
		if err != nil || strings.ContainsFunc(v.url, func(r rune) bool { return r > 0x7e }) {
			continue // the snippet documents ASCII URLs as sent on the wire
		}
		urls = append(urls, [2]string{v.method, v.url})
		want = append(want, h)
	}
	in, _ := json.Marshal(urls)
	script := string(snippet) + `
import json, sys
print(json.dumps([sign(m, u, sys.argv[1], sys.argv[2], ts=int(sys.argv[3]), nonce=sys.argv[4]) for m, u in json.load(sys.stdin)]))
`
	cmd := exec.Command(py, "-c", script, keyID, secret, "1795316400", nonce)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3: %v\n%s", err, stderr.String())
	}
	var got []string
	if err := json.Unmarshal(out, &got); err != nil || len(got) != len(want) {
		t.Fatalf("python output %q: %v", out, err)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%s %s:\nreadme: %s\ngo:     %s", urls[i][0], urls[i][1], got[i], want[i])
		}
	}
	if len(want) < 10 {
		t.Errorf("only %d vectors checked", len(want))
	}
}
