package agent

import "flag"

// DockerConfig configures the docker driver beyond its defaults.
type DockerConfig struct {
	// AuthFile is a docker config.json with registry credentials for
	// pulls (drivers/docker.Config.AuthFile).
	AuthFile string
}

// dockerFileConfig is DockerConfig's part of a -config file.
type dockerFileConfig struct {
	DockerAuth *string `json:"docker_auth"`
}

// apply copies the fields the file sets into c.
func (fc *dockerFileConfig) apply(c *DockerConfig) {
	if fc.DockerAuth != nil {
		c.AuthFile = *fc.DockerAuth
	}
}

// registerDockerFlags adds the docker driver's flags to fs.
func registerDockerFlags(fs *flag.FlagSet, c *DockerConfig) {
	fs.StringVar(&c.AuthFile, "docker-auth", c.AuthFile, "client: docker config.json whose \"auths\" hold registry credentials for the docker driver's pulls (credential helpers are not run)")
}
