"""The team: roles (a leaf every service checks), accounts, the audit trail, project settings."""
