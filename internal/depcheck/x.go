// Package depcheck pins the project's chosen dependencies in go.mod while the
// packages that use them are being written, so that `go mod tidy` does not drop
// them. It is removed once every dependency is imported by real code.
package depcheck

import (
	_ "github.com/gambol99/go-marathon"
	_ "github.com/go-zeromq/zmq4"
	_ "github.com/go-zookeeper/zk"
	_ "github.com/goccy/go-yaml"
	_ "github.com/mesos/mesos-go/api/v1/lib"
	_ "github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	_ "github.com/mesos/mesos-go/api/v1/lib/executor/calls"
	_ "github.com/mesos/mesos-go/api/v1/lib/executor/config"
	_ "github.com/mesos/mesos-go/api/v1/lib/extras/scheduler/controller"
	_ "github.com/mesos/mesos-go/api/v1/lib/httpcli/httpexec"
	_ "github.com/mesos/mesos-go/api/v1/lib/httpcli/httpsched"
	_ "github.com/mesos/mesos-go/api/v1/lib/resources"
	_ "github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/urfave/cli/v2"
	_ "go.uber.org/goleak"
)
