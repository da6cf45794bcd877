//! `imbridge bench import` (placeholder while being written).
