//! Bulk-import apply (issue 4).
