//go:build tools

// Package main pins modules the code base will import, so go mod tidy keeps them.
package main

import (
	_ "github.com/chromedp/chromedp"
	_ "github.com/google/uuid"
	_ "github.com/gorilla/websocket"
	_ "github.com/hashicorp/go-memdb"
	_ "github.com/hashicorp/raft"
	_ "github.com/hashicorp/raft-boltdb/v2"
	_ "github.com/nats-io/nats-server/v2/server"
	_ "github.com/nats-io/nats.go"
	_ "github.com/nats-io/nats.go/jetstream"
	_ "gopkg.in/yaml.v3"
)
