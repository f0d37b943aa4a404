package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	authv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/version"

	"github.com/ciplat/ciplat/drivers"
)

// permission is one thing the driver does, checked by Fingerprint.
type permission struct {
	verb, resource, subresource string
}

// needed are the permissions the driver uses besides creating Pods (which
// Fingerprint checks with a dry run): deploy/kubernetes/rbac.yaml grants
// exactly these and pods create.
var needed = []permission{
	{"list", "pods", ""},
	{"watch", "pods", ""},
	{"delete", "pods", ""},
	{"create", "pods", "exec"},
}

// Fingerprint reports the driver healthy when the API server answers, the
// namespace exists and the driver may do there all it needs: a dry-run
// create of a worker Pod (namespace, admission and RBAC in one) and a
// SelfSubjectAccessReview for each other verb. Version is the server's
// version. While the breaker is open it reports unhealthy with the reason
// without calling the server. Detected is true once the server has
// answered, so an agent whose cluster went away reports "detected,
// unhealthy".
func (d *Driver) Fingerprint(ctx context.Context) drivers.Fingerprint {
	fp := drivers.Fingerprint{Attributes: map[string]string{
		"driver.kubernetes.namespace": d.cfg.Namespace,
	}}
	if d.rest != nil {
		fp.Attributes["driver.kubernetes.host"] = d.rest.Host
	}
	var v version.Info
	err := d.api.Call(ctx, "version", true, func(ctx context.Context) error {
		body, err := d.cs.Discovery().RESTClient().Get().AbsPath("/version").Do(ctx).Raw()
		if err != nil {
			return err
		}
		return json.Unmarshal(body, &v)
	})
	if err != nil {
		fp.Detected = d.seen.Load()
		fp.Reason = fmt.Sprintf("kubernetes: API server %s does not answer: %v: check -kubeconfig and that the cluster is up", fp.Attributes["driver.kubernetes.host"], err)
		if errors.Is(err, ErrAPIUnavailable) {
			fp.Reason = fmt.Sprintf("kubernetes: %v", err)
		}
		return fp
	}
	d.seen.Store(true)
	fp.Detected = true
	fp.Version = v.GitVersion
	fp.Attributes["driver.kubernetes.version"] = v.GitVersion
	fp.Attributes["driver.kubernetes.platform"] = v.Platform

	if reason := d.checkNamespace(ctx); reason != "" {
		fp.Reason = reason
		return fp
	}
	fp.Healthy = true
	return fp
}

// checkNamespace returns why the driver cannot work in its namespace, or "".
func (d *Driver) checkNamespace(ctx context.Context) string {
	ns := d.cfg.Namespace
	probe := d.podSpec(probeConfig())
	probe.GenerateName = "ciplat-fingerprint-"
	err := d.api.Call(ctx, "dry-run create pod", true, func(ctx context.Context) error {
		_, err := d.cs.CoreV1().Pods(ns).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err
	})
	switch {
	case err == nil:
	case apierrors.IsNotFound(err):
		return fmt.Sprintf("kubernetes: namespace %q does not exist: create it (kubectl create namespace %s) or give -k8s-namespace", ns, ns)
	case apierrors.IsForbidden(err):
		return fmt.Sprintf("kubernetes: may not create pods in namespace %q: %v: apply deploy/kubernetes/rbac.yaml for the driver's user", ns, apiMessage(err))
	case errors.Is(err, ErrAPIUnavailable):
		return fmt.Sprintf("kubernetes: %v", err)
	default:
		return fmt.Sprintf("kubernetes: a worker Pod would be rejected in namespace %q: %v", ns, apiMessage(err))
	}
	var missing []string
	for _, p := range needed {
		review := &authv1.SelfSubjectAccessReview{Spec: authv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authv1.ResourceAttributes{Namespace: ns, Verb: p.verb, Resource: p.resource, Subresource: p.subresource},
		}}
		var allowed bool
		err := d.api.Call(ctx, "access review", true, func(ctx context.Context) error {
			r, err := d.cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
			if err == nil {
				allowed = r.Status.Allowed
			}
			return err
		})
		if err != nil {
			return fmt.Sprintf("kubernetes: checking permission to %s %s: %v", p.verb, p.name(), err)
		}
		if !allowed {
			missing = append(missing, p.verb+" "+p.name())
		}
	}
	if len(missing) > 0 {
		return fmt.Sprintf("kubernetes: may not %s in namespace %q: apply deploy/kubernetes/rbac.yaml for the driver's user", strings.Join(missing, ", "), ns)
	}
	return ""
}

func (p permission) name() string {
	if p.subresource != "" {
		return p.resource + "/" + p.subresource
	}
	return p.resource
}

// probeConfig is the worker the dry run creates.
func probeConfig() drivers.WorkerConfig {
	return drivers.WorkerConfig{ID: "fingerprint", Image: "busybox", JobID: "fingerprint"}
}

// apiMessage is the API server's message of err, without client-go's
// wrapping, or err's text.
func apiMessage(err error) string {
	var se apierrors.APIStatus
	if errors.As(err, &se) && se.Status().Message != "" {
		return se.Status().Message
	}
	return err.Error()
}
