//! Output: aligned tables for people, JSON for machines.
//!
//! Writes ignore a closed stdout, so `hematite queue list | head -1` ends quietly instead of
//! panicking. Times print as RFC 3339 UTC (`2024-01-01T00:00:00Z`) in both forms. Table cells
//! show control characters escaped (`\n`, `\t`), so one message stays on one line; JSON carries
//! the exact text.

use std::io::Write;

use hematite_client::Metadata;
use hematite_queue_protocol::datetime::format_iso8601_seconds;
use serde_json::Value;
use time::OffsetDateTime;

/// Writes text to stdout, ignoring a closed pipe.
pub fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    if !text.ends_with('\n') {
        let _ = out.write_all(b"\n");
    }
    let _ = out.flush();
}

/// Prints a JSON value, pretty.
pub fn json(value: &Value) {
    print(&serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".into()));
}

pub fn time(t: OffsetDateTime) -> String {
    format_iso8601_seconds(t)
}

pub fn metadata_json(md: &Metadata) -> Value {
    Value::Object(
        md.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// `k=v, k2=v2`
pub fn metadata_inline(md: &Metadata) -> String {
    md.iter()
        .map(|(k, v)| format!("{k}={}", cell(v)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A cell with control characters escaped.
pub fn cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&c.escape_unicode().to_string()),
            c => out.push(c),
        }
    }
    out
}

/// Columns padded to their widest cell; the last column is not padded.
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Self {
        Self {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells.iter().map(|c| cell(c)).collect());
    }

    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, c) in widths.iter_mut().zip(row) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut out = String::new();
        let mut line = |cells: Vec<&str>| {
            let last = cells.len().saturating_sub(1);
            let mut l = String::new();
            for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
                l.push_str(c);
                if i < last {
                    l.push_str(&" ".repeat(w - c.chars().count() + 2));
                }
            }
            out.push_str(l.trim_end());
            out.push('\n');
        };
        line(self.headers.clone());
        for row in &self.rows {
            line(row.iter().map(String::as_str).collect());
        }
        out
    }

    pub fn print(&self) {
        print(&self.render());
    }
}

/// `FIELD  value` lines, for one object.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    pairs
        .iter()
        .map(|(k, v)| format!("{k:<width$}  {}\n", cell(v)).trim_end().to_owned() + "\n")
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_escape() {
        let mut t = Table::new(&["NAME", "TEXT"]);
        t.row(vec!["a".into(), "line1\nline2".into()]);
        t.row(vec!["longer".into(), "".into()]);
        assert_eq!(t.render(), "NAME    TEXT\na       line1\\nline2\nlonger\n");
        assert_eq!(
            fields(&[("NAME", "q".into()), ("MESSAGES", "3".into())]),
            "NAME      q\nMESSAGES  3\n"
        );
    }
}
