"""A real Kubernetes control plane on loopback, for development, tests and the demo.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler run as plain
processes built from pinned sources (see hack/build-k8s.sh); kwok simulates the
nodes, renews their leases and plays the kubelet's part for pods. Nothing here is
part of the product's data or control path: it is the stage the product is tested on.
"""
