//! Answer bodies written by blocking code as they are sent: the writer ([`Pieces`])
//! hands the body pieces of about [`PIECE`] bytes through a small channel, so neither
//! side holds the whole answer. It always keeps its latest bytes back until it is
//! released, so an answer can be held short of its end until something else is done
//! (a backup's record committed). A failure midway ends the body early (the client sees
//! it cut) and is logged.

use std::io::Write;

use axum::body::{Body, Bytes};
use tokio::sync::mpsc;

use crate::pki::PkiError;

type Piece = Result<Bytes, std::io::Error>;

/// The size of the pieces sent.
const PIECE: usize = 256 * 1024;

/// A body, and the writer that fills it.
pub fn channel() -> (Pieces, Body) {
    let (tx, rx) = mpsc::channel::<Piece>(8);
    let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|piece| (piece, rx))
    }));
    (
        Pieces {
            tx,
            buf: Vec::with_capacity(PIECE),
        },
        body,
    )
}

/// A body that `write` fills, on the blocking pool.
pub fn written<F>(write: F) -> Body
where
    F: FnOnce(&mut dyn Write) -> Result<(), PkiError> + Send + 'static,
{
    let (mut out, body) = channel();
    tokio::task::spawn_blocking(move || {
        if let Err(e) = write(&mut out) {
            out.blocking_fail(&e.to_string());
        } else {
            out.blocking_release();
        }
    });
    body
}

/// Gathers what is written into pieces, sending each full one once more is written.
pub struct Pieces {
    tx: mpsc::Sender<Piece>,
    buf: Vec<u8>,
}

impl Pieces {
    /// Sends what was held back: the body ends.
    pub async fn release(self) {
        if !self.buf.is_empty() {
            let _ = self.tx.send(Ok(Bytes::from(self.buf))).await;
        }
    }

    /// [`Pieces::release`], from blocking code.
    pub fn blocking_release(self) {
        if !self.buf.is_empty() {
            let _ = self.tx.blocking_send(Ok(Bytes::from(self.buf)));
        }
    }

    /// Ends the body short of its end, for `why`, which is logged.
    pub async fn fail(self, why: &str) {
        tracing::error!("an answer stopped before its end: {why}");
        let _ = self.tx.send(Err(std::io::Error::other(why.to_string()))).await;
    }

    /// [`Pieces::fail`], from blocking code.
    pub fn blocking_fail(self, why: &str) {
        tracing::error!("an answer stopped before its end: {why}");
        let _ = self.tx.blocking_send(Err(std::io::Error::other(why.to_string())));
    }
}

impl Write for Pieces {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if !self.buf.is_empty() && self.buf.len() + data.len() > PIECE {
            let piece = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(PIECE)));
            self.tx
                .blocking_send(Ok(piece))
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away"))?;
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
