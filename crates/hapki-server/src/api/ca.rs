//! CA management: list issuers, create a root or intermediate, install an
//! intermediate's certificate, import from PKCS#12, choose the default, rotate CRLs.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use hapki_api::ca::{
    CrlRotated, DefaultIssuer, ImportRequest, InstallCertRequest, IssuerList, IssuerState, IssuerView, RootRequest,
    RotateCrlRequest,
};
use hapki_domain::pem::{encode, PemLabel};
use hapki_store::{Command, IssuerRecord};

use super::{json, Json};
use crate::auth::{Action, Caller};
use crate::error::ApiError;
use crate::pki::Pki;

fn view(pki: &Pki, i: IssuerRecord, default: Option<&str>) -> Result<IssuerView, ApiError> {
    let crl_number = pki.reader()?.crl(&i.id)?.map(|c| c.number);
    Ok(IssuerView {
        default: default == Some(i.id.as_str()),
        not_after: i.is_active().then_some(i.not_after),
        status: if i.is_active() {
            IssuerState::Active
        } else {
            IssuerState::AwaitingCertificate
        },
        certificate: i.is_active().then(|| encode(PemLabel::Certificate, &i.cert_der)),
        chain: i.chain_der.iter().map(|d| encode(PemLabel::Certificate, d)).collect(),
        csr: (!i.is_active()).then(|| encode(PemLabel::CertificateRequest, &i.csr_der)),
        id: i.id,
        name: i.name,
        key_type: i.key_type,
        crl_number,
    })
}

/// `GET /v1/ca`.
pub async fn list(State(pki): State<Arc<Pki>>, caller: Caller) -> Result<impl IntoResponse, ApiError> {
    caller.may(Action::ReadStatus)?;
    let reader = pki.reader()?;
    let default = reader.default_issuer_id()?;
    let issuers = reader
        .issuers()?
        .into_iter()
        .map(|i| view(&pki, i, default.as_deref()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(json(IssuerList { issuers }))
}

async fn created(pki: &Pki, record: IssuerRecord) -> Result<impl IntoResponse, ApiError> {
    // A new issuer publishes its first (empty) CRL at once.
    let index = pki.cluster.status().last_applied.unwrap_or(0);
    pki.refresh_crl(&record.id, index + 1).await?;
    let default = pki.reader()?.default_issuer_id()?;
    Ok((StatusCode::CREATED, json(view(pki, record, default.as_deref())?)))
}

/// `POST /v1/ca/root`.
pub async fn init_root(
    State(pki): State<Arc<Pki>>,
    caller: Caller,
    Json(req): Json<RootRequest>,
) -> Result<impl IntoResponse, ApiError> {
    caller.may(Action::ManageCa)?;
    let record = pki.init_root(&caller.origin(), &req).await?;
    created(&pki, record).await
}

/// `POST /v1/ca/intermediate`: returns the CSR to have signed by the parent CA.
pub async fn init_intermediate(
    State(pki): State<Arc<Pki>>,
    caller: Caller,
    Json(req): Json<RootRequest>,
) -> Result<impl IntoResponse, ApiError> {
    caller.may(Action::ManageCa)?;
    Ok((
        StatusCode::CREATED,
        json(pki.init_intermediate(&caller.origin(), &req).await?),
    ))
}

/// `POST /v1/ca/{id}/certificate`.
pub async fn install_cert(
    State(pki): State<Arc<Pki>>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<InstallCertRequest>,
) -> Result<impl IntoResponse, ApiError> {
    caller.may(Action::ManageCa)?;
    let record = pki.install_cert(&caller.origin(), &id, &body.certificate).await?;
    created(&pki, record).await
}

/// `POST /v1/ca/import`.
pub async fn import(
    State(pki): State<Arc<Pki>>,
    caller: Caller,
    Json(req): Json<ImportRequest>,
) -> Result<impl IntoResponse, ApiError> {
    caller.may(Action::ManageCa)?;
    let record = pki.import_pkcs12(&caller.origin(), &req).await?;
    created(&pki, record).await
}

/// `POST /v1/ca/{id}/default`.
pub async fn set_default(
    State(pki): State<Arc<Pki>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    caller.may(Action::ManageCa)?;
    pki.propose(&caller.origin(), Command::SetDefaultIssuer { id: id.clone() })
        .await?;
    Ok(json(DefaultIssuer { default: id }))
}

/// `POST /v1/crl/rotate`: publishes a new CRL now.
pub async fn rotate_crl(
    State(pki): State<Arc<Pki>>,
    caller: Caller,
    Json(body): Json<RotateCrlRequest>,
) -> Result<impl IntoResponse, ApiError> {
    caller.may(Action::RotateCrl)?;
    let issuer = pki.issuer(body.issuer.as_deref())?;
    let index = pki.cluster.status().last_applied.unwrap_or(0);
    let number = pki.refresh_crl(&issuer.record.id, index + 1).await?;
    Ok(json(CrlRotated {
        issuer: issuer.record.id.clone(),
        crl_number: number,
    }))
}
