//! An answer body written by blocking code as it is sent: the writer runs on the
//! blocking pool and hands the body pieces of [`PIECE`] bytes through a small channel,
//! so neither side holds the whole answer. A failure midway ends the body early (the
//! client sees it cut) and is logged.

use std::io::Write;

use axum::body::{Body, Bytes};
use tokio::sync::mpsc;

use crate::pki::PkiError;

type Piece = Result<Bytes, std::io::Error>;

/// The size of the pieces sent.
const PIECE: usize = 64 * 1024;

/// A body that `write` fills.
pub fn written<F>(write: F) -> Body
where
    F: FnOnce(&mut dyn Write) -> Result<(), PkiError> + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<Piece>(8);
    tokio::task::spawn_blocking(move || {
        let mut out = Pieces {
            tx: tx.clone(),
            buf: Vec::with_capacity(PIECE),
        };
        let result = write(&mut out).and_then(|()| {
            out.send()
                .map_err(|e| PkiError::internal(format!("sending the answer: {e}")))
        });
        if let Err(e) = result {
            tracing::error!("an answer stopped before its end: {e}");
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|piece| (piece, rx))
    }))
}

/// Gathers what is written into pieces and sends each when it is full.
struct Pieces {
    tx: mpsc::Sender<Piece>,
    buf: Vec<u8>,
}

impl Pieces {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(PIECE)));
        self.tx
            .blocking_send(Ok(piece))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for Pieces {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= PIECE {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
