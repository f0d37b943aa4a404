package structs

// BuiltinDrivers are the drivers compiled into ciplat; a job's driver is one
// of them or the name of a plugin driver (drivers/plugin), which only the
// nodes that run the plugin know.
var BuiltinDrivers = []string{"exec", "docker", "kubernetes", "mock"}

// ContainerDrivers run a job's image. A job with an image that names no
// driver runs only on a node where one of them is healthy: never on the
// host by accident (issue 12). `driver: exec` runs it on the host, ignoring
// the image.
var ContainerDrivers = []string{"docker", "kubernetes"}
