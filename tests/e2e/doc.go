// Package e2e holds the end-to-end tests of the deployment kit: the built authd binary, real nginx
// running the shipped snippets, real Streamlit running the demo app, and headless Chromium driven
// through chromedp, all on loopback. The tests run only when AUTHD_E2E is set (tests/run.sh sets it
// after installing nginx, Chromium and Streamlit); plain `go test ./...` skips them.
package e2e
