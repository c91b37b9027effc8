// Command etcd runs the published etcd server (etcd's own main is in a module that needs its
// monorepo; these three lines are what it does).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
