package users

import "testing"

func TestCanonical(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{in: "alice", want: "alice"},
		{in: "Alice ", want: "alice"},
		{in: "  ALICE\t", want: "alice"},
		{in: "bob.smith@example.com", want: "bob.smith@example.com"},
		{in: "a_b-c.d", want: "a_b-c.d"},
		{in: "0day", want: "0day"},
		{in: "x", want: "x"},
		{in: string(make64('a')), want: string(make64('a'))},
		{in: string(make64('a')) + "a", wantErr: true},
		{in: "", wantErr: true},
		{in: "   ", wantErr: true},
		{in: ".alice", wantErr: true},
		{in: "-alice", wantErr: true},
		{in: "@alice", wantErr: true},
		{in: "_alice", wantErr: true},
		{in: "al ice", wantErr: true},
		{in: "alice:x", wantErr: true},
		{in: "alice/..", wantErr: true},
		{in: "ålice", wantErr: true},
		{in: "\u212Aate", wantErr: true}, // Kelvin sign, lower-cases to "k" with Unicode folding
		{in: "al\x00ice", wantErr: true},
		{in: "alice\n", want: "alice"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Canonical(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Canonical(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("Canonical(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func make64(c byte) []byte {
	b := make([]byte, MaxNameBytes)
	for i := range b {
		b[i] = c
	}
	return b
}

func TestCanonicalIdempotent(t *testing.T) {
	for _, in := range []string{"Alice", "bob@EXAMPLE.org", "x.y_z-1"} {
		t.Run(in, func(t *testing.T) {
			once, err := Canonical(in)
			if err != nil {
				t.Fatal(err)
			}
			twice, err := Canonical(once)
			if err != nil || twice != once {
				t.Errorf("Canonical(%q) = %q, %v, want %q, nil", once, twice, err, once)
			}
		})
	}
}
