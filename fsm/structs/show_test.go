package structs

import (
	"strings"
	"testing"
)

func TestShowValue(t *testing.T) {
	cases := map[string]string{
		"":                           `""`,
		"exec":                       `"exec"`,
		strings.Repeat("a", ShowMax): `"` + strings.Repeat("a", ShowMax) + `"`,
		strings.Repeat("a", 100):     `"` + strings.Repeat("a", ShowMax) + `"… (100 bytes)`,
		// the cut never splits a rune: 39 bytes of "a", then a 2-byte é
		strings.Repeat("a", 39) + "éé": `"` + strings.Repeat("a", 39) + `"… (43 bytes)`,
	}
	for in, want := range cases {
		if got := ShowValue(in); got != want {
			t.Errorf("ShowValue(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestShowKey(t *testing.T) {
	cases := map[string]string{
		"exec":                   "exec",
		`a"b`:                    `"a\"b"`,
		"a\nb":                   `"a\nb"`,
		strings.Repeat("k", 100): `"` + strings.Repeat("k", ShowMax) + `"… (100 bytes)`,
	}
	for in, want := range cases {
		if got := ShowKey(in); got != want {
			t.Errorf("ShowKey(%q) = %s, want %s", in, got, want)
		}
	}
}
