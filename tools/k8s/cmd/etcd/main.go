// Command etcd is etcd's own server main (as in the go.etcd.io/etcd/v3 root
// module's main.go), built from go.etcd.io/etcd/server/v3 so that the version
// is the one go.mod pins; the root module is not published for every release.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
