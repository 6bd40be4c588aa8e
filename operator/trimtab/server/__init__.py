"""`trimtab api`: the HTTP API over the runtime (submit, follow, cancel and list runs,
review and dead letters, live figures), with Kubernetes authentication and RBAC."""
