package policy

import "testing"

func TestHostOnly(t *testing.T) {
	tests := []struct{ in, want string }{
		{"app.example.com", "app.example.com"},
		{"App.Example.COM:8443", "app.example.com"},
		{"[2001:DB8::1]:443", "2001:db8::1"},
		{"[::1]", "::1"},
		{"192.0.2.1:80", "192.0.2.1"},
		{"", ""},
		{"\u212aiosk.example.com", "\u212aiosk.example.com"},
		{"\u212aIOSK.EXAMPLE.COM", "\u212aiosk.example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := HostOnly(tt.in); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
