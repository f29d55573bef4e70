//! `/v1/backups`: a backup streamed to the client as it is written, and the list of
//! recorded backups. The last bytes of a backup are held back until its record is
//! committed, so a client that received the whole file knows the cluster recorded it.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hapki_api::backups::{BackupRequest, ID_HEADER, INDEX_HEADER};

use super::{json, Json};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::pki::Pki;

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
    let (mut writer, body) = super::stream::channel();
    let logged = id.clone();
    tokio::spawn(async move {
        let written = tokio::task::spawn_blocking(move || {
            let written = job.write(&mut writer).map(|(_, w)| w);
            (job, writer, written)
        })
        .await;
        let (writer, why) = match written {
            Ok((job, writer, Ok(written))) => match pki.record_backup(&job, &written, None).await {
                Ok(_) => return writer.release().await,
                Err(e) => (writer, e.to_string()),
            },
            Ok((_, writer, Err(e))) => (writer, e.to_string()),
            // A panic took the writer with it: the body ends short of its length by itself.
            Err(e) => return tracing::error!("backup {logged} failed: {e}"),
        };
        writer.fail(&format!("backup {logged} failed: {why}")).await;
    });
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

#[cfg(test)]
mod tests {
    use axum::http::Method;
    use hapki_domain::backup::{self, BackupKey};
    use hapki_store::Role;
    use serde_json::json;

    use crate::testing::{refused, Api};

    fn key() -> BackupKey {
        BackupKey::from_bytes([7; 32])
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_admin_receives_a_backup_that_opens_with_its_key_and_is_recorded() {
        let api = Api::new().await;
        let a = api.post("/v1/backups", &json!({"key": key().to_text()})).await;
        assert_eq!(a.status.as_u16(), 200, "{:?}", a.body);
        assert_eq!(
            a.headers[axum::http::header::CONTENT_LENGTH].to_str().unwrap(),
            a.bytes.len().to_string()
        );
        let id = a.headers[super::ID_HEADER].to_str().unwrap().to_string();
        let (header, mut reader) = backup::open(std::io::Cursor::new(&a.bytes), &key()).unwrap();
        assert_eq!(header.id, id);
        let mut plain = Vec::new();
        std::io::Read::read_to_end(&mut reader, &mut plain).unwrap();
        assert!(!plain.is_empty());
        assert!(
            backup::open(std::io::Cursor::new(&a.bytes), &BackupKey::from_bytes([8; 32])).is_err(),
            "another key does not open it"
        );
        let list = api.get("/v1/backups").await;
        assert_eq!(list.status.as_u16(), 200, "{:?}", list.body);
        let rows = list.body["backups"].as_array().unwrap();
        assert_eq!(rows.len(), 1, "{:?}", list.body);
        assert_eq!(rows[0]["id"], id.as_str());
        assert_eq!(rows[0]["size"], a.bytes.len() as u64);
        assert_eq!(rows[0]["taken_by"], "admin");
        assert_eq!(rows[0]["digest"], header.digest.as_str());
        assert_eq!(rows[0]["index"], header.index);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn weaker_tokens_and_bad_requests_are_refused_and_change_nothing() {
        let api = Api::new().await;
        let weaker = [
            (Role::Agent, api.token(Role::Agent).await),
            (Role::Requester, api.token(Role::Requester).await),
        ];
        let before = api.digest();
        let body = json!({"key": key().to_text()});
        for (role, token) in weaker {
            let a = api.call(Method::POST, "/v1/backups", Some(&token), Some(&body)).await;
            refused(role.name(), &a, 403, "forbidden", "may not");
            let a = api.call(Method::GET, "/v1/backups", Some(&token), None).await;
            refused(role.name(), &a, 403, "forbidden", "may not");
        }
        let a = api.call(Method::POST, "/v1/backups", None, Some(&body)).await;
        refused("no token", &a, 401, "unauthorized", "token");
        let fp = "ab".repeat(32);
        for (case, req, says) in [
            ("no key", json!({}), "key"),
            ("a key that is not one", json!({"key": "hbk_short"}), "key"),
            ("a key of another kind", json!({"key": "hpk_AAAA"}), "key"),
            (
                "a recipient without its fingerprint",
                json!({"key": key().to_text(), "recipient": "a.b.c.d.e"}),
                "go together",
            ),
            (
                "a recipient that is not a JWE",
                json!({"key": key().to_text(), "recipient": "not a jwe", "recipient_fingerprint": fp}),
                "JWE",
            ),
            (
                "a fingerprint that is not hex",
                json!({"key": key().to_text(), "recipient": "a.b.c.d.e", "recipient_fingerprint": "zz"}),
                "64 hex digits",
            ),
            ("an unknown field", json!({"key": key().to_text(), "other": 1}), "other"),
        ] {
            let a = api.post("/v1/backups", &req).await;
            refused(case, &a, 400, "invalid_request", says);
        }
        assert_eq!(api.digest(), before);
        assert_eq!(api.get("/v1/backups").await.body["backups"], json!([]));
    }
}
