package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/image"
)

// pull is one image pull in flight, shared by the CreateWorker calls that
// need the same image.
type pull struct {
	done chan struct{}
	err  error
}

// ensureImage makes sure ref is present on the engine. A missing image is
// pulled, once however many workers wait for it, bounded by
// Config.PullTimeout and aborted when the pull reports no progress for
// Config.PullStall, with the credentials of Config.AuthFile for its
// registry, if any. When no registry answers the error says so:
// `image "x" not found locally and no registry reachable: ...`.
func (d *Driver) ensureImage(ctx context.Context, ref string) error {
	if ref == "" {
		return errors.New("docker: the job has no image: set `image:` in the job (the docker driver runs every job in a container of that image)")
	}
	err := d.eng.Call(ctx, "inspect image", true, func(ctx context.Context) error {
		_, err := d.eng.api.ImageInspect(ctx, ref)
		return err
	})
	switch {
	case err == nil:
		return nil
	case !cerrdefs.IsNotFound(err):
		return fmt.Errorf("docker: inspect image %q: %w", ref, err)
	}

	d.pullMu.Lock()
	p := d.pulls[ref]
	if p == nil {
		p = &pull{done: make(chan struct{})}
		d.pulls[ref] = p
		go func() {
			// Not tied to one caller's ctx: others may wait for it.
			p.err = d.pullImage(ref)
			d.pullMu.Lock()
			delete(d.pulls, ref)
			d.pullMu.Unlock()
			close(p.done)
		}()
	}
	d.pullMu.Unlock()
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return fmt.Errorf("docker: waiting for the pull of image %q: %w", ref, ctx.Err())
	}
}

// pullImage pulls ref and reads the engine's progress stream to its end,
// where an error is reported.
func (d *Driver) pullImage(ref string) error {
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.PullTimeout)
	defer cancel()
	d.log.Info("pulling image", "image", ref)
	start := time.Now()
	auth, err := d.auth.header(ref)
	if err != nil {
		return err
	}
	var body io.ReadCloser
	err = d.eng.callRemote(ctx, "pull image", func(ctx context.Context) error {
		var err error
		body, err = d.eng.api.ImagePull(ctx, ref, image.PullOptions{RegistryAuth: auth})
		return err
	})
	if err != nil {
		return pullError(ref, err)
	}
	defer body.Close()

	// The progress stream: one JSON message per event, an error last.
	progress := make(chan error, 1)
	msgs := make(chan struct{}, 1)
	go func() {
		dec := json.NewDecoder(body)
		for {
			var m struct {
				Error       string `json:"error"`
				ErrorDetail struct {
					Message string `json:"message"`
				} `json:"errorDetail"`
			}
			if err := dec.Decode(&m); err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				progress <- err
				return
			}
			if m.Error != "" || m.ErrorDetail.Message != "" {
				msg := m.ErrorDetail.Message
				if msg == "" {
					msg = m.Error
				}
				progress <- errors.New(msg)
				return
			}
			select {
			case msgs <- struct{}{}:
			default:
			}
		}
	}()
	stall := time.NewTimer(d.cfg.PullStall)
	defer stall.Stop()
	for {
		select {
		case err := <-progress:
			if err != nil {
				return pullError(ref, err)
			}
			// The stream ended cleanly: the image must be there now.
			ierr := d.eng.Call(context.Background(), "inspect image", true, func(ctx context.Context) error {
				_, err := d.eng.api.ImageInspect(ctx, ref)
				return err
			})
			if ierr != nil {
				return fmt.Errorf("docker: image %q: pull ended but the image is not there: %w", ref, ierr)
			}
			d.log.Info("pulled image", "image", ref, "took", time.Since(start))
			return nil
		case <-msgs:
			stall.Reset(d.cfg.PullStall)
		case <-stall.C:
			body.Close()
			return pullError(ref, fmt.Errorf("no progress for %v", d.cfg.PullStall))
		case <-ctx.Done():
			body.Close()
			return pullError(ref, fmt.Errorf("pull took longer than %v", d.cfg.PullTimeout))
		}
	}
}

// pullError explains why a missing image could not be pulled: no registry
// answered (the network, DNS, a timeout, a stall), or one answered no.
func pullError(ref string, err error) error {
	msg := strings.ToLower(err.Error())
	unreachable := errors.Is(err, context.DeadlineExceeded) || transient(err)
	for _, s := range []string{
		"dial tcp", "no such host", "connection refused", "i/o timeout", "timeout",
		"network is unreachable", "no route to host", "tls handshake", "temporary failure in name resolution",
		"server misbehaving", "no progress for", "pull took longer", "connection reset",
	} {
		unreachable = unreachable || strings.Contains(msg, s)
	}
	if unreachable {
		return fmt.Errorf("docker: image %q not found locally and no registry reachable: %w: load or build it on this host (docker load / docker build), or give the engine a registry it can reach", ref, err)
	}
	return fmt.Errorf("docker: image %q not found locally, and the registry refused the pull: %w: check the image name and tag, and the engine's registry credentials", ref, err)
}
