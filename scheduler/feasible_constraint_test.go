package scheduler

import (
	"strings"
	"testing"

	"github.com/ciplat/ciplat/fsm/structs"
)

// TestMatcher_Match covers every operator of structs.ConstraintOps, present
// and absent attributes, and invalid operands (which never match, never panic).
func TestMatcher_Match(t *testing.T) {
	node := testNode("node-7", 1000, 1000,
		"label.zone", "b",
		"cpu.cores", "8",
		"kernel", "6.8.0",
		"docker.version", "28.5.2",
		"go.version", "1.26.0-rc1",
		"tags", "ssd, gpu,fast",
		"name", "builder-12",
	)
	tests := []struct {
		attr, op, value string
		want            bool
	}{
		{"label.zone", "=", "b", true},
		{"label.zone", "=", "a", false},
		{"label.missing", "=", "", false},
		{"label.zone", "!=", "a", true},
		{"label.zone", "!=", "b", false},
		{"label.missing", "!=", "a", true},
		{"node.id", "=", "node-7", true},
		{"node.name", "=", "name-node-7", true},

		// Numeric when both sides are numbers: 8 > 10 is false, "8" > "10" lexically is true.
		{"cpu.cores", ">", "10", false},
		{"cpu.cores", "<", "10", true},
		{"cpu.cores", ">=", "8", true},
		{"cpu.cores", "<=", "8.0", true},
		{"cpu.cores", ">", "7.5", true},
		{"cpu.cores", "<", "-1", false},
		// Lexical otherwise.
		{"label.zone", ">", "a", true},
		{"label.zone", "<", "a", false},
		{"label.zone", ">=", "b", true},
		{"label.zone", "<=", "az", false},
		{"kernel", ">", "6.10.0", true}, // lexical: "6.8" > "6.1"; use version for versions
		{"cpu.cores", "<", "abc", true}, // lexical: "8" < "abc"
		{"label.missing", "<", "10", false},

		{"name", "regexp", "^builder-[0-9]+$", true},
		{"name", "regexp", "^runner-", false},
		{"name", "regexp", "build", true},
		{"label.missing", "regexp", ".*", false},
		{"name", "regexp", "(", false},   // invalid
		{"name", "regexp", "[a-", false}, // invalid

		{"tags", "set_contains", "gpu", true},
		{"tags", "set_contains", "ssd,fast", true},
		{"tags", "set_contains", " fast , ssd ", true},
		{"tags", "set_contains", "gpu,tpu", false},
		{"tags", "set_contains", "gp", false},
		{"tags", "set_contains", "", false}, // invalid: empty set
		{"label.missing", "set_contains", "gpu", false},

		{"label.zone", "is_set", "", true},
		{"label.missing", "is_set", "", false},
		{"label.zone", "is_not_set", "", false},
		{"label.missing", "is_not_set", "", true},

		{"docker.version", "version", ">= 20.10", true},
		{"docker.version", "version", ">= 20, < 28", false},
		{"docker.version", "version", "~> 28.5", true},
		{"docker.version", "version", "~> 28.4.0", false},
		{"docker.version", "version", "28.5.2", true},
		{"docker.version", "version", "!= 28.5.2", false},
		{"kernel", "version", "> 6.10", false},        // numeric per segment, unlike the lexical >
		{"go.version", "version", ">= 1.26.0", false}, // a prerelease sorts before its release
		{"go.version", "version", ">= 1.26.0-beta1", true},
		{"label.zone", "version", ">= 1", false},     // attribute is no version
		{"docker.version", "version", ">= x", false}, // invalid constraint
		{"docker.version", "version", "", false},     // invalid constraint
		{"docker.version", "version", ">=", false},   // invalid constraint
		{"label.missing", "version", ">= 1", false},

		{"label.zone", "like", "b", false}, // unknown operator
		{"label.zone", "", "b", false},     // unknown operator
	}
	m := newMatcher()
	for _, tt := range tests {
		name := tt.attr + " " + tt.op + " " + tt.value
		t.Run(name, func(t *testing.T) {
			if got := m.Match(node, tt.attr, tt.op, tt.value); got != tt.want {
				t.Errorf("Match(%s) = %v, want %v", name, got, tt.want)
			}
		})
	}
	// Every operator of the spec is known to the matcher.
	for _, op := range structs.ConstraintOps {
		if o := compileOperand(op, "1"); strings.HasPrefix(o.invalid, "unknown operator") {
			t.Errorf("operator %q of structs.ConstraintOps is unknown to the matcher", op)
		}
	}
}

func TestConstraintCheck_Feasible(t *testing.T) {
	node := testNode("n1", 1000, 1000, "label.zone", "a")
	tests := []struct {
		name   string
		cons   []structs.Constraint
		ok     bool
		reason string
	}{
		{"none", nil, true, ""},
		{"all hold", []structs.Constraint{{Attr: "os", Op: "=", Value: "linux"}, {Attr: "label.zone", Op: "is_set"}}, true, ""},
		{"first failing is named", []structs.Constraint{
			{Attr: "os", Op: "=", Value: "linux"},
			{Attr: "label.zone", Op: "=", Value: "b"},
			{Attr: "arch", Op: "=", Value: "arm64"},
		}, false, "constraint label.zone = b"},
		{"is_set has no value", []structs.Constraint{{Attr: "label.gpu", Op: "is_set"}}, false, "constraint label.gpu is_set"},
		{"bad regexp", []structs.Constraint{{Attr: "os", Op: "regexp", Value: "(linux"}}, false, "constraint os regexp (linux is invalid: missing closing )"},
		{"bad version", []structs.Constraint{{Attr: "os", Op: "version", Value: ">= one"}}, false, `constraint os version >= one is invalid: bad version "one", want e.g. ">= 1.2, < 2"`},
		{"unknown operator", []structs.Constraint{{Attr: "os", Op: "~=", Value: "linux"}}, false,
			`constraint os ~= linux is invalid: unknown operator "~=", want one of = != < > <= >= regexp set_contains is_set is_not_set version`},
	}
	check := constraintCheck{m: newMatcher()}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := testJob("j", 1, 1)
			j.Spec.Constraints = tt.cons
			for range 2 { // the second call reads the caches
				ok, reason := check.Feasible(node, j)
				if ok != tt.ok || reason != tt.reason {
					t.Fatalf("Feasible = %v, %q; want %v, %q", ok, reason, tt.ok, tt.reason)
				}
			}
		})
	}
}

// TestConstraintCheck_FeasibleNoAllocs guards the hot path: once the caches
// are warm, checking a node allocates nothing, whether it passes or fails.
func TestConstraintCheck_FeasibleNoAllocs(t *testing.T) {
	node := testNode("n1", 1000, 1000, "label.zone", "a", "cores", "8", "v", "1.2.3", "tags", "a,b")
	j := testJob("j", 1, 1)
	j.Spec.Driver = "podman"
	j.Spec.Constraints = []structs.Constraint{
		{Attr: "os", Op: "regexp", Value: "^lin"},
		{Attr: "cores", Op: ">=", Value: "4"},
		{Attr: "label.zone", Op: "<", Value: "b"},
		{Attr: "v", Op: "version", Value: ">= 1.2, < 2"},
		{Attr: "tags", Op: "set_contains", Value: "b"},
		{Attr: "label.zone", Op: "=", Value: "b"}, // fails
	}
	m := newMatcher()
	checks := []feasibilityCheck{nodeStatusCheck{}, driverCheck{m: m}, constraintCheck{m: m}}
	for _, c := range checks {
		c.Feasible(node, j) // warm the caches
		if n := testing.AllocsPerRun(100, func() { c.Feasible(node, j) }); n != 0 {
			t.Errorf("%s: %v allocations per check, want 0", c.Name(), n)
		}
	}
}
