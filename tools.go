//go:build tools

// Package main pins modules the code base will import, so go mod tidy keeps them.
package main

import (
	_ "github.com/google/uuid"
	_ "github.com/hashicorp/go-memdb"
	_ "github.com/hashicorp/raft"
	_ "github.com/hashicorp/raft-boltdb/v2"
	_ "gopkg.in/yaml.v3"
)
