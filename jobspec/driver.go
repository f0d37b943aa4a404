package jobspec

import (
	"regexp"
	"strings"

	"github.com/ciplat/ciplat/fsm/structs"
)

// specDriverName is the syntax of a driver name a spec may use: plugin
// drivers must be named this way to be usable.
var specDriverName = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)

// driver checks a job's driver. Plugin driver names cannot be known when a
// spec is parsed (plugins live on client nodes, which come and go), so a
// name that is not built in is accepted when it has the syntax of a driver
// name and is no likely typo of a built-in one; a job that names a driver
// no node has stays pending, and the scheduler says "missing driver X".
func (v *specValidator) driver(name, path string) {
	if name == "" {
		return
	}
	if !v.field(name, path) {
		return
	}
	known := strings.Join(structs.BuiltinDrivers, ", ")
	if specContains(structs.BuiltinDrivers, name) {
		return
	}
	if !specDriverName.MatchString(name) {
		msg := "invalid driver name " + structs.ShowValue(name) + ": use one of " + known + ", or a plugin driver's name (lower-case letters, digits, '.', '_' or '-')"
		if s := specSuggest(strings.ToLower(name), structs.BuiltinDrivers); s != "" || specContains(structs.BuiltinDrivers, strings.ToLower(name)) {
			if s == "" {
				s = strings.ToLower(name)
			}
			msg += "; did you mean \"" + s + "\"?"
		}
		v.add(path, "%s", msg)
		return
	}
	if s := specSuggest(name, structs.BuiltinDrivers); s != "" {
		v.add(path, "unknown driver %s, did you mean %q? (built-in drivers: %s; plugin drivers go by their plugin's name)", structs.ShowValue(name), s, known)
	}
}
