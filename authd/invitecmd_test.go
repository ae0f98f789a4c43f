package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/authd/authd/authd/internal/account"
)

func (e *machineEnv) runArgs(args ...string) (string, string, int) {
	var out, errb bytes.Buffer
	code := run(context.Background(), append(args[:2:2], append([]string{"-config", e.config}, args[2:]...)...), strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), code
}

var linkRE = regexp.MustCompile(`^https://app\.example\.com/authd/(invite|reset)/([A-Za-z0-9_-]{43})\n$`)

func TestInviteCLI(t *testing.T) {
	e := newMachineEnv(t)
	out, errs, code := e.runArgs("invite", "create", "-user", "Carol", "-groups", "staff,ops", "-email", "carol@example.com", "-expires", "2d")
	m := linkRE.FindStringSubmatch(out)
	if code != 0 || m == nil || m[1] != "invite" {
		t.Fatalf("invite create: got %q %q (exit %d), want one invite link", out, errs, code)
	}
	token := m[2]
	stored, err := os.ReadFile(filepath.Join(e.data, account.FileName))
	if err != nil || strings.Contains(string(stored), token) || !strings.Contains(string(stored), account.Key(token)) {
		t.Fatalf("the account file must hold the token's hash, not the token: %s (%v)", stored, err)
	}
	st := account.New(account.NewFile(filepath.Join(e.data, account.FileName), nil), nil)
	inv, err := st.Invite(context.Background(), token)
	if err != nil || inv.User != "carol" || strings.Join(inv.Groups, ",") != "staff,ops" || inv.Email != "carol@example.com" || !strings.HasPrefix(inv.By, "unix:") {
		t.Fatalf("stored invite: got %+v, %v", inv, err)
	}
	if d := inv.Expires.Sub(inv.Created); d != 48*60*60*1e9 {
		t.Fatalf("expiry: got %s after creation, want 48h", d)
	}
	out, _, code = e.runArgs("invite", "list")
	if code != 0 || !strings.HasPrefix(out, inv.ID+"  carol  carol@example.com  staff,ops  ") || strings.Contains(out, token) {
		t.Fatalf("invite list: got %q (exit %d)", out, code)
	}
	if _, errs, code := e.runArgs("invite", "revoke", inv.ID); code != 0 {
		t.Fatalf("revoke: exit %d, %s", code, errs)
	}
	if _, err := st.Invite(context.Background(), token); err == nil {
		t.Fatal("a revoked invite still works")
	}
	if _, errs, code := e.runArgs("invite", "revoke", inv.ID); code != 1 || !strings.Contains(errs, "no open invite") {
		t.Fatalf("second revoke: got exit %d, %q", code, errs)
	}
	for _, bad := range [][]string{
		{"invite", "create", "-user", "alice"},
		{"invite", "create", "-groups", "Bad Group"},
		{"invite", "create", "-email", "Bob <b@example.com>"},
		{"invite", "create", "-expires", "31d"},
		{"invite", "create", "extra"},
		{"invite", "frob"},
	} {
		if out, errs, code := e.runArgs(bad...); code == 0 || out != "" {
			t.Errorf("%q: got exit %d, out %q, err %q; want a refusal", bad, code, out, errs)
		}
	}
}

func TestResetLinkCLI(t *testing.T) {
	e := newMachineEnv(t)
	out, errs, code := e.runArgs("user", "reset-link", "-expires", "30m", "ALICE")
	m := linkRE.FindStringSubmatch(out)
	if code != 0 || m == nil || m[1] != "reset" {
		t.Fatalf("reset-link: got %q %q (exit %d)", out, errs, code)
	}
	st := account.New(account.NewFile(filepath.Join(e.data, account.FileName), nil), nil)
	r, err := st.Reset(context.Background(), m[2])
	if err != nil || r.User != "alice" || r.Expires.Sub(r.Created) != 30*60*1e9 {
		t.Fatalf("stored reset: got %+v, %v", r, err)
	}
	if out2, _, _ := e.runArgs("user", "reset-link", "alice"); linkRE.FindStringSubmatch(out2) == nil {
		t.Fatalf("second reset-link: got %q", out2)
	}
	if _, err := st.Reset(context.Background(), m[2]); err == nil {
		t.Fatal("an older reset link still works after a newer one was made")
	}
	if _, errs, code := e.runArgs("user", "reset-link", "nobody"); code != 1 || !strings.Contains(errs, "no user nobody") {
		t.Fatalf("unknown user: got exit %d, %q", code, errs)
	}
	if _, errs, code := e.runArgs("user", "reset-link", "bob"); code != 0 || !strings.Contains(errs, "locked") {
		t.Fatalf("locked user: got exit %d, %q; want a link and a warning", code, errs)
	}
}
