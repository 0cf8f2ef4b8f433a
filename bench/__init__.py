"""Speed and capacity of the provider, measured against node-oidc-provider (see bench/README.md)."""
