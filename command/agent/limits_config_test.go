package agent

import (
	"io"
	"os"
	"strings"
	"testing"

	"github.com/ciplat/ciplat/jobspec"
)

// TestParseFlags_Limits: every row of the spec limits table is a flag with
// its default, a flag value reaches the config, and a negative one is
// refused naming the flag.
func TestParseFlags_Limits(t *testing.T) {
	cfg, err := ParseFlags([]string{"-dev"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SpecLimits != jobspec.DefaultLimits() {
		t.Errorf("defaults %+v, want %+v", cfg.SpecLimits, jobspec.DefaultLimits())
	}
	cfg, err = ParseFlags([]string{"-dev", "-limit-jobs-per-pipeline", "7", "-limit-spec-bytes", "4096"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SpecLimits.JobsPerPipeline != 7 || cfg.SpecLimits.SpecBytes != 4096 {
		t.Errorf("flags not applied: %+v", cfg.SpecLimits)
	}
	if _, err := ParseFlags([]string{"-dev", "-limit-steps-per-job", "-1"}, io.Discard); err == nil || !strings.Contains(err.Error(), "-limit-steps-per-job") {
		t.Errorf("negative limit: %v", err)
	}
}

// TestSpecLimits_Documented: docs/pipeline-spec.md lists every limit flag
// with its default.
func TestSpecLimits_Documented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/pipeline-spec.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range jobspec.LimitTable {
		if !strings.Contains(string(doc), "`-"+row.Flag+"`") {
			t.Errorf("docs/pipeline-spec.md does not document -%s", row.Flag)
		}
	}
}
