//! The fixed-width text tables of the validation, import and verify reports.
//!
//! One writer, so that a header and its rows cannot drift apart and every report lines its columns up the same
//! way: a table is its column layout, and the header is written through the same call as each row.

use std::fmt::{Display, Write as _};

/// How one column is aligned in its width.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Align {
    Left(usize),
    Right(usize),
}

/// A table's columns, separated by one space; `tail` is written as is after the last column (a free-width note).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Table(pub(crate) &'static [Align]);

impl Table {
    /// Writes one line: `cells[i]` in column `i` (as many cells as columns), then `tail`.
    pub(crate) fn row(&self, out: &mut String, cells: &[&dyn Display], tail: &str) {
        debug_assert_eq!(cells.len(), self.0.len(), "one cell per column");
        for (i, (cell, align)) in cells.iter().zip(self.0).enumerate() {
            if i > 0 {
                out.push(' ');
            }
            let _ = match *align {
                Align::Left(w) => write!(out, "{cell:<w$}"),
                Align::Right(w) => write!(out, "{cell:>w$}"),
            };
        }
        out.push_str(tail);
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_like_the_format_strings_it_replaces() {
        const T: Table = Table(&[Align::Left(6), Align::Right(4), Align::Right(3)]);
        let mut s = String::new();
        T.row(&mut s, &[&"kind", &"n", &"ok"], "  result");
        T.row(&mut s, &[&"groups", &12, &0], "  ok");
        assert_eq!(
            s,
            format!("{:<6} {:>4} {:>3}  result\n{:<6} {:>4} {:>3}  ok\n", "kind", "n", "ok", "groups", 12, 0)
        );
    }
}
