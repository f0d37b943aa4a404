package structs

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ShowMax is how much of a client-supplied value an error message quotes.
const ShowMax = 40

// ShowValue quotes a client-supplied value for an error message, cut after
// ShowMax bytes (at a rune boundary), so an error never echoes a huge input.
// The request checks of messages_validate.go, the FSM and the spec parser
// (jobspec) all quote with it.
func ShowValue(s string) string {
	if len(s) <= ShowMax {
		return strconv.Quote(s)
	}
	cut := ShowMax
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + fmt.Sprintf("… (%d bytes)", len(s))
}

// ShowKey is a client-supplied map key as a part of a field path in an
// error message ("drivers.exec"): as is when short and printable, else
// quoted and cut like ShowValue.
func ShowKey(s string) string {
	if len(s) <= ShowMax && !strings.ContainsFunc(s, func(r rune) bool { return r == '"' || !unicode.IsPrint(r) }) {
		return s
	}
	return ShowValue(s)
}
