//! End-to-end scenarios live in this package's `[[test]]` targets; this library holds what they share.
