"""Reading: the label schema, reads, worklists, review and adjudication, agreement, browsing the
hierarchy, and label export/import."""
