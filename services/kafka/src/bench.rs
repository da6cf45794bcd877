//! `imbridge bench kafka` (filled in below).
