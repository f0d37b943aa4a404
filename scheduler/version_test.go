package scheduler

import "testing"

func TestParseVersion(t *testing.T) {
	tests := []struct {
		in  string
		ok  bool
		n   int
		pre string
	}{
		{"1", true, 1, ""},
		{"1.2.3", true, 3, ""},
		{"v1.26.8", true, 3, ""},
		{" 28.5.2 ", true, 3, ""},
		{"6.8.0-45-generic", true, 3, "45-generic"},
		{"1.2.3-rc.1+build.5", true, 3, "rc.1"},
		{"1.2.3+build", true, 3, ""},
		{"1.2.3.4.5.6", true, 6, ""},
		{"1.2.3.4.5.6.7", false, 0, ""},
		{"", false, 0, ""},
		{"v", false, 0, ""},
		{"1..2", false, 0, ""},
		{"1.2.", false, 0, ""},
		{"1.x", false, 0, ""},
		{"1.2-", false, 0, ""},
		{"amd64", false, 0, ""},
		{"1234567890123456789", false, 0, ""},
	}
	for _, tt := range tests {
		v, ok := parseVersion(tt.in)
		if ok != tt.ok || (ok && (v.n != tt.n || v.pre != tt.pre)) {
			t.Errorf("parseVersion(%q) = %+v, %v; want n=%d pre=%q ok=%v", tt.in, v, ok, tt.n, tt.pre, tt.ok)
		}
	}
}

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"1.2", "1.2.0", 0},
		{"1.10", "1.9", 1},
		{"2", "10", -1},
		{"1.0.0-rc1", "1.0.0", -1},
		{"1.0.0-alpha", "1.0.0-alpha.1", -1},
		{"1.0.0-alpha.1", "1.0.0-alpha.beta", -1},
		{"1.0.0-beta.2", "1.0.0-beta.11", -1},
		{"1.0.0-rc.1", "1.0.0-beta.11", 1},
		{"1.0.0+a", "1.0.0+b", 0},
	}
	for _, tt := range tests {
		a, _ := parseVersion(tt.a)
		b, _ := parseVersion(tt.b)
		if got := compareVersions(a, b); got != tt.want {
			t.Errorf("compareVersions(%s, %s) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := compareVersions(b, a); got != -tt.want {
			t.Errorf("compareVersions(%s, %s) = %d, want %d", tt.b, tt.a, got, -tt.want)
		}
	}
}

func TestVersionConstraint_Check(t *testing.T) {
	tests := []struct {
		constraint, version string
		want                bool
	}{
		{">= 1.2, < 2", "1.2", true},
		{">= 1.2, < 2", "1.9.9", true},
		{">= 1.2, < 2", "2.0", false},
		{">= 1.2, < 2", "1.1", false},
		{"1.2.3", "1.2.3", true},
		{"= 1.2.3", "1.2.4", false},
		{"!= 1.2.3", "1.2.4", true},
		{"> 1.2.3", "1.2.3", false},
		{"<= 1.2.3", "1.2.3", true},
		{"~> 1.2", "1.9", true},
		{"~> 1.2", "2.0", false},
		{"~> 1.2", "1.1", false},
		{"~> 1.2.3", "1.2.9", true},
		{"~> 1.2.3", "1.3.0", false},
		{"~> 1", "1.5", true},
		{"~> 1", "2.0", false},
		{">=1.0,<=1.0", "1.0", true},
	}
	for _, tt := range tests {
		vc, err := parseVersionConstraint(tt.constraint)
		if err != nil {
			t.Fatalf("parseVersionConstraint(%q): %v", tt.constraint, err)
		}
		v, ok := parseVersion(tt.version)
		if !ok {
			t.Fatalf("parseVersion(%q) failed", tt.version)
		}
		if got := vc.Check(v); got != tt.want {
			t.Errorf("%q.Check(%s) = %v, want %v", tt.constraint, tt.version, got, tt.want)
		}
	}
	for _, bad := range []string{"", " ", ">=", ">= 1,", "~> x", "1.2 || 2", ">> 1"} {
		if _, err := parseVersionConstraint(bad); err == nil {
			t.Errorf("parseVersionConstraint(%q) = nil error, want one", bad)
		}
	}
}

// FuzzMatcher_Match checks that no operand or attribute value makes matching
// panic. The seeds run with every go test.
func FuzzMatcher_Match(f *testing.F) {
	for _, s := range [][3]string{
		{"version", ">= 1.2, < 2", "1.5"}, {"version", "~>", "1"}, {"regexp", "(", "x"},
		{"set_contains", ",,", "a,b"}, {"<", "1e", "2"}, {">=", "-", "+"}, {"version", "v-", "1.2.3-"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	m := newMatcher()
	f.Fuzz(func(_ *testing.T, op, value, attr string) {
		n := testNode("n", 1, 1, "x", attr)
		m.Match(n, "x", op, value)
		m.reason(reasonKey{kind: reasonConstraint, attr: "x", op: op, value: value})
	})
}
