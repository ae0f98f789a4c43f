package server

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// pageReq runs a tiny signed-in form handler built on the page helpers.
func (h *harness) pageReq(method, cookie string, form url.Values, headers map[string]string) (*httptest.ResponseRecorder, *pageUser) {
	h.t.Helper()
	var body *strings.Reader = strings.NewReader("")
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	r := httptest.NewRequest(method, "/authd/account?tab=1", body)
	r.RemoteAddr = "127.0.0.1:40000"
	if form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if cookie != "" {
		r.Header.Set("Cookie", cookie)
	}
	for k, v := range headers {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	o := h.srv.cur.Load()
	p, ok := h.srv.signedIn(o, w, r)
	if ok && method == "POST" && h.srv.checkForm(o, w, r, p, "test") {
		w.WriteHeader(http.StatusNoContent)
	}
	return w, p
}

func TestSignedInRedirectsToLoginAndBack(t *testing.T) {
	h := newHarness(t, nil, nil)
	w, _ := h.pageReq("GET", "", nil, nil)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/authd/login?rd=%2Fauthd%2Faccount%3Ftab%3D1" {
		t.Fatalf("got %d %q, want 303 to the login page returning here", w.Code, w.Header().Get("Location"))
	}
	_, p := h.pageReq("GET", h.login("alice"), nil, map[string]string{"Accept-Language": "de-DE"})
	if p == nil || p.User.Name != "alice" {
		t.Fatalf("got %+v, want alice", p)
	}
}

func TestCheckForm(t *testing.T) {
	h := newHarness(t, nil, nil)
	alice, bob := h.login("alice"), h.login("bob")
	_, pa := h.pageReq("GET", alice, nil, nil)
	good := h.srv.cur.Load().formToken(pa, "test")
	same := map[string]string{"Origin": "https://app.example.com", "Sec-Fetch-Site": "same-origin"}
	for _, tc := range []struct {
		name    string
		cookie  string
		form    url.Values
		headers map[string]string
		want    int
	}{
		{"valid", alice, url.Values{"csrf": {good}}, same, http.StatusNoContent},
		{"no token", alice, url.Values{}, same, http.StatusForbidden},
		{"another session's token", bob, url.Values{"csrf": {good}}, same, http.StatusForbidden},
		{"cross-site origin", alice, url.Values{"csrf": {good}}, map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
		{"cross-site fetch", alice, url.Values{"csrf": {good}}, map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"too large", alice, url.Values{"csrf": {good}, "x": {strings.Repeat("a", maxFormBody)}}, same, http.StatusRequestEntityTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, _ := h.pageReq("POST", tc.cookie, tc.form, tc.headers)
			if w.Code != tc.want {
				t.Fatalf("got %d, want %d; body %s", w.Code, tc.want, w.Body)
			}
			if tc.want != http.StatusNoContent && !strings.Contains(w.Body.String(), "<h1>") {
				t.Fatalf("refusal is not a page: %s", w.Body)
			}
		})
	}
}
