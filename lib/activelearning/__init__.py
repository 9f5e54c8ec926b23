"""Which study an annotator gets next: selection strategies, and leases so that two annotators
are never given the same study."""
