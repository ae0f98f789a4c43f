// Package security is authd's adversarial suite: every behaviour in SECURITY.md as a black-box test
// of the built binary behind real nginx running the shipped snippets, with a tiny echo upstream that
// reports the path and headers that reached the app. Payloads live in testdata/ (one per line), so
// the suite grows by editing data files. The tests run only when AUTHD_E2E is set (tests/run.sh sets
// it after installing nginx); plain `go test ./...` skips them.
package security
