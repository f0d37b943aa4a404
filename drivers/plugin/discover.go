package plugin

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Discover opens every plugin in dir: each regular, executable file whose
// name starts with FilePrefix ("ciplat-driver-shell"). base applies to all
// of them, with Path set per plugin and StateDir, when base has one, made
// per plugin: <base.StateDir>/<file name>. The result maps each driver's
// Name() to its Driver; the caller must Close them.
//
// A missing dir means no plugins. A plugin that fails to start, or two
// plugins that claim one name, fail the whole call (the ones opened are
// closed): an agent should not come up without a driver it was given.
func Discover(dir string, base Config) (map[string]*Driver, error) {
	out := map[string]*Driver{}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("plugin: read plugin dir: %w", err)
	}
	fail := func(err error) (map[string]*Driver, error) {
		for _, d := range out {
			_ = d.Close()
		}
		return nil, err
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), FilePrefix) || e.IsDir() {
			continue
		}
		path := filepath.Join(dir, e.Name())
		fi, err := os.Stat(path) // follows symlinks
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			continue
		}
		cfg := base
		cfg.Path = path
		cfg.Args = slices.Clone(base.Args)
		if base.StateDir != "" {
			cfg.StateDir = filepath.Join(base.StateDir, e.Name())
		}
		d, err := New(cfg)
		if err != nil {
			return fail(err)
		}
		if prev := out[d.Name()]; prev != nil {
			_ = d.Close()
			return fail(fmt.Errorf("plugin: %s and %s both provide the driver %q: remove one", prev.Path(), path, d.Name()))
		}
		out[d.Name()] = d
	}
	return out, nil
}
