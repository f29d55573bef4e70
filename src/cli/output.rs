//! Printing results: the typed answer as JSON, or an aligned table of its fields.

use std::fmt::Display;

use serde::Serialize;

use super::Output;

/// Prints `rows` under `headers` as a table, or `value` as JSON.
pub fn print<T: Serialize>(output: Output, value: &T, headers: &[&str], rows: Vec<Vec<String>>) {
    match output {
        Output::Json => json(value),
        Output::Table => table(headers, rows),
    }
}

/// Prints a key/value record, or `value` as JSON.
pub fn record<T: Serialize>(output: Output, value: &T, fields: Vec<(&str, String)>) {
    match output {
        Output::Json => json(value),
        Output::Table => {
            let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
            for (k, v) in fields {
                println!("{k:<width$}  {v}");
            }
        }
    }
}

/// Prints `value` as pretty JSON.
pub fn json<T: Serialize>(value: &T) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

fn table(headers: &[&str], rows: Vec<Vec<String>>) {
    table_page(headers, rows, true)
}

/// One page of a table printed page by page: the header only above the first, each page's
/// columns as wide as its own cells and the header.
pub fn table_page(headers: &[&str], rows: Vec<Vec<String>>, first: bool) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    if first {
        line(headers.iter().map(|h| h.to_uppercase()).collect());
    }
    for row in rows {
        line(row);
    }
}

/// A field that may be absent, or "-".
pub fn opt<T: Display>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

/// A unix time as RFC 3339.
pub fn t(secs: u64) -> String {
    hapki_domain::time::rfc3339(secs)
}

/// A unix time that may be absent as RFC 3339, or "-".
pub fn ot(secs: Option<u64>) -> String {
    opt(secs.map(t))
}

/// A list joined with `sep`, or "-" when empty.
pub fn list(items: &[String], sep: &str) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items.join(sep)
    }
}

/// How a unit enum value is spelled on the wire (`server_auth`).
pub fn wire_name<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "?".into(),
    }
}
