//! Printing results: JSON as the server sent it, or an aligned table.

use serde_json::Value;

use super::Output;

/// Prints `rows` under `headers` as a table, or `json` as JSON.
pub fn print(output: Output, json: &Value, headers: &[&str], rows: Vec<Vec<String>>) {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(json).unwrap_or_default()),
        Output::Table => table(headers, rows),
    }
}

/// Prints a key/value record.
pub fn record(output: Output, json: &Value, fields: Vec<(&str, String)>) {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(json).unwrap_or_default()),
        Output::Table => {
            let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
            for (k, v) in fields {
                println!("{k:<width$}  {v}");
            }
        }
    }
}

fn table(headers: &[&str], rows: Vec<Vec<String>>) {
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
    line(headers.iter().map(|h| h.to_uppercase()).collect());
    for row in rows {
        line(row);
    }
}

/// A string field, or "-".
pub fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// A unix time field as RFC 3339, or "-".
pub fn t(v: &Value) -> String {
    v.as_u64()
        .map(hapki_domain::time::rfc3339)
        .unwrap_or_else(|| "-".into())
}
