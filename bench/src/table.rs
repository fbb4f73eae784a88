//! A plain-text table with aligned columns, and the number formats the benches print.

use std::fmt;

/// Column alignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    /// Pad on the right (labels).
    Left,
    /// Pad on the left (numbers).
    Right,
}

/// Rows of cells printed under a header, each column as wide as its widest cell.
#[derive(Clone, Debug)]
pub struct Table {
    header: Vec<String>,
    align: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles; the first column is left-aligned, the rest right.
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Self {
        let header: Vec<String> = header.into_iter().map(Into::into).collect();
        let align = (0..header.len())
            .map(|i| if i == 0 { Align::Left } else { Align::Right })
            .collect();
        Table {
            header,
            align,
            rows: Vec::new(),
        }
    }

    /// Append a row.
    ///
    /// # Panics
    /// If the row does not have one cell per column.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        let cells: Vec<String> = cells.into_iter().map(Into::into).collect();
        assert_eq!(cells.len(), self.header.len(), "one cell per column");
        self.rows.push(cells);
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let widths: Vec<usize> = (0..self.header.len())
            .map(|c| {
                self.rows
                    .iter()
                    .map(|r| r[c].chars().count())
                    .chain([self.header[c].chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |f: &mut fmt::Formatter<'_>, cells: &[String]| -> fmt::Result {
            for (c, cell) in cells.iter().enumerate() {
                let sep = if c == 0 { "" } else { " | " };
                match self.align[c] {
                    Align::Left => write!(f, "{sep}{cell:<w$}", w = widths[c])?,
                    Align::Right => write!(f, "{sep}{cell:>w$}", w = widths[c])?,
                }
            }
            writeln!(f)
        };
        line(f, &self.header)?;
        let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
        writeln!(f, "{}", rule.join("-+-"))?;
        for r in &self.rows {
            line(f, r)?;
        }
        Ok(())
    }
}

/// A rate with an SI prefix: `12.34 M`.
pub fn si(v: f64) -> String {
    if v >= 1e9 {
        format!("{:.2} G", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.2} k", v / 1e3)
    } else {
        format!("{v:.2}")
    }
}

/// `median [min .. max]` of a rate, with SI prefixes.
pub fn rate_cell((median, lo, hi): (f64, f64, f64)) -> String {
    format!("{} [{} .. {}]", si(median), si(lo), si(hi))
}

/// `median [min .. max]` of a time in nanoseconds.
pub fn ns_cell((median, lo, hi): (f64, f64, f64)) -> String {
    format!("{median:.1} [{lo:.1} .. {hi:.1}]")
}

/// A ratio: `0.87x`.
pub fn ratio(v: f64) -> String {
    format!("{v:.2}x")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_to_the_widest_cell() {
        let mut t = Table::new(["name", "value"]);
        t.row(["a", "1"]);
        t.row(["longer", "12345678"]);
        let s = t.to_string();
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[0], "name   |    value");
        assert_eq!(lines[1], "-------+---------");
        assert_eq!(lines[2], "a      |        1");
        assert_eq!(lines[3], "longer | 12345678");
    }

    #[test]
    fn si_prefixes() {
        assert_eq!(si(1_234_567.0), "1.23 M");
        assert_eq!(si(999.0), "999.00");
        assert_eq!(si(2.5e9), "2.50 G");
    }
}
