//go:build !unix

package exec

import "errors"

var errNoUser = errors.New("exec: running steps as another user is only supported on Unix")

func (r *runAs) canReach(string) error { return errNoUser }
func (r *runAs) chown(string) error    { return errNoUser }
