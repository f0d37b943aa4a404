package command

import "testing"

func TestParsePorts(t *testing.T) {
	for in, want := range map[string][2]int{"8080:80": {8080, 80}, "80": {0, 80}, "0:5432": {0, 5432}} {
		l, r, err := parsePorts(in)
		if err != nil || l != want[0] || r != want[1] {
			t.Errorf("parsePorts(%q) = %d, %d, %v; want %v", in, l, r, err, want)
		}
	}
	for _, in := range []string{"", "x", "80:", ":80", "1:0", "70000:80", "-1:80", "80:80:80"} {
		if _, _, err := parsePorts(in); err == nil {
			t.Errorf("parsePorts(%q) succeeded", in)
		}
	}
}
