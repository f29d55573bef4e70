//! How the server's log lines look: text or JSON (`--log-format`), each one naming the
//! node, and carrying the fields of the request being served (its id, route and, for a
//! write, the log index: [`crate::observe`]). The node's id is known once its data
//! directory is open ([`set_node`]); lines before that name `-`.

use std::fmt;
use std::sync::OnceLock;

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

static NODE: OnceLock<String> = OnceLock::new();

/// Names the node in every line from now on.
pub fn set_node(id: u64) {
    let _ = NODE.set(format!("{id:016x}"));
}

/// A line format with the node's id in front: `node=… ` before a text line, a `"node"`
/// member first in a JSON one.
pub struct WithNode<F> {
    pub inner: F,
    pub json: bool,
}

impl<S, N, F> FormatEvent<S, N> for WithNode<F>
where
    F: FormatEvent<S, N>,
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut line = String::new();
        self.inner.format_event(ctx, Writer::new(&mut line), event)?;
        let node = NODE.get().map_or("-", String::as_str);
        match line.strip_prefix('{') {
            Some(rest) if self.json => write!(writer, "{{\"node\":\"{node}\",{rest}"),
            _ => write!(writer, "node={node} {line}"),
        }
    }
}
