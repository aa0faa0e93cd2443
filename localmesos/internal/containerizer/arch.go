package containerizer

import "runtime"

func hostArch() string { return runtime.GOARCH }
