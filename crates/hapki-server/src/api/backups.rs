//! `/v1/backups`: a backup streamed to the client as it is written, and the list of
//! recorded backups. The last bytes of a backup are held back until its record is
//! committed, so a client that received the whole file knows the cluster recorded it.

use std::io::Write;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hapki_api::backups::{BackupRequest, ID_HEADER, INDEX_HEADER};
use tokio::sync::mpsc;

use super::{json, Json};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::pki::Pki;

type Piece = Result<Bytes, std::io::Error>;

/// `POST /v1/backups`.
pub async fn create(
    State(pki): State<Arc<Pki>>,
    caller: Caller,
    Json(req): Json<BackupRequest>,
) -> Result<Response, ApiError> {
    let prepared = pki.clone();
    let job = tokio::task::spawn_blocking(move || prepared.prepare_backup(&caller, &req))
        .await
        .map_err(|e| crate::pki::PkiError::internal(e.to_string()))??;
    let (len, id, index) = (job.len, job.header().id.clone(), job.header().index);
    let (tx, rx) = mpsc::channel::<Piece>(8);
    let logged = id.clone();
    tokio::spawn(async move {
        let writer = HoldBack::new(tx.clone());
        let written =
            tokio::task::spawn_blocking(move || job.write(writer).map(|(w, written)| (job, w, written))).await;
        let failure = match written {
            Ok(Ok((job, writer, written))) => match pki.record_backup(&job, &written, None).await {
                Ok(_) => {
                    writer.release().await;
                    return;
                }
                Err(e) => e.to_string(),
            },
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        tracing::error!("backup {logged} failed: {failure}");
        let _ = tx.send(Err(std::io::Error::other(failure))).await;
    });
    let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|piece| (piece, rx))
    }));
    let mut resp = (StatusCode::OK, body).into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    headers.insert(ID_HEADER, HeaderValue::from_str(&id).expect("hex id"));
    headers.insert(INDEX_HEADER, HeaderValue::from(index));
    Ok(resp)
}

/// `GET /v1/backups`.
pub async fn list(State(pki): State<Arc<Pki>>, caller: Caller) -> Result<impl IntoResponse, ApiError> {
    Ok(json(pki.backups(&caller)?))
}

/// Sends what is written to the answer in pieces, always keeping the latest write back
/// until [`HoldBack::release`].
struct HoldBack {
    tx: mpsc::Sender<Piece>,
    buf: Vec<u8>,
}

const PIECE: usize = 256 * 1024;

impl HoldBack {
    fn new(tx: mpsc::Sender<Piece>) -> Self {
        HoldBack {
            tx,
            buf: Vec::with_capacity(PIECE),
        }
    }

    async fn release(self) {
        if !self.buf.is_empty() {
            let _ = self.tx.send(Ok(Bytes::from(self.buf))).await;
        }
    }
}

impl Write for HoldBack {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if !self.buf.is_empty() && self.buf.len() + data.len() > PIECE {
            let piece = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(PIECE)));
            self.tx
                .blocking_send(Ok(piece))
                .map_err(|_| std::io::Error::other("the client went away"))?;
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
