package containerizer

// SandboxPath is where the sandbox is mounted in a container with an image
// (Mesos' --sandbox_directory default), and MESOS_SANDBOX's value there.
const SandboxPath = "/mnt/mesos/sandbox"

// Volume is a host_path volume of the ContainerInfo.
type Volume struct {
	HostPath string `json:"host_path"`
	// ContainerPath is absolute in the container, or relative to the
	// sandbox.
	ContainerPath string `json:"container_path"`
	ReadOnly      bool   `json:"read_only"`
}

// Spec is one process to start in a container.
type Spec struct {
	Rootfs  string   `json:"rootfs"`
	Sandbox string   `json:"sandbox"` // host path, mounted at SandboxPath
	Volumes []Volume `json:"volumes,omitempty"`
	// Path is the executable (looked up in the container's PATH when it
	// has no '/'), Args its argv.
	Path string   `json:"path"`
	Args []string `json:"args"`
	Env  []string `json:"env"`
	// Dir is the working directory in the container (default SandboxPath).
	Dir string `json:"dir,omitempty"`
}
