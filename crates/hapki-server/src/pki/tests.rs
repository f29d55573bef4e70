//! The CA service in process, on a cluster of one without Raft and a manual clock:
//! what must happen with time (a CRL renewed before its nextUpdate, the OCSP
//! signer renewed 30 days before it ends, an expired token refused) is shown by
//! moving the clock, with no sleep.

use hapki_domain::issue::summarize;
use hapki_store::Role;

use super::{Pki, TokenGrant};
use crate::auth::Caller;
use crate::clock::{Clock, ManualClock};
use crate::testing::{service, START};

const DAY: u64 = 86_400;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_crl_is_renewed_before_its_next_update() {
    let clock = ManualClock::new(START);
    let (_dir, pki, id) = service(clock.clone()).await;
    let latest = |pki: &Pki| pki.reader().unwrap().latest_crl(&id).unwrap().unwrap();
    let first = latest(&pki);
    assert_eq!((first.this_update(), first.next_update()), (START, START + DAY));
    // Before half of its validity nothing is due.
    clock.advance(DAY / 2 - 1);
    pki.renew_due_crls().await.unwrap();
    assert_eq!(latest(&pki).number(), first.number());
    // Past half of it, a new CRL is published, long before the old one's nextUpdate.
    clock.advance(2);
    pki.renew_due_crls().await.unwrap();
    let second = latest(&pki);
    assert_eq!(second.number(), first.number() + 1);
    assert_eq!(second.this_update(), clock.now());
    assert!(second.this_update() < first.next_update() && second.next_update() > first.next_update());
    // What this node serves is that CRL, signed with its number and times.
    let served = pki.crl_der(&id).await.unwrap();
    let crl = <x509_cert::crl::CertificateList as der::Decode>::from_der(&served.der).unwrap();
    assert_eq!(served.number, second.number());
    assert_eq!(
        crl.tbs_cert_list.this_update.to_unix_duration().as_secs(),
        second.this_update()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ocsp_signer_is_renewed_30_days_before_it_ends() {
    let clock = ManualClock::new(START);
    let (_dir, pki, id) = service(clock.clone()).await;
    let signer_end = |pki: &Pki| {
        let issuer = pki.reader().unwrap().issuer(&id).unwrap().unwrap();
        summarize(&issuer.ocsp.expect("an OCSP signer").cert_der)
            .unwrap()
            .not_after
    };
    let end = signer_end(&pki);
    assert!(end > START + 31 * DAY, "the signer lives long enough for this test");
    // 31 days before its end: not yet.
    clock.advance(end - 31 * DAY - START);
    pki.invalidate();
    pki.renew_due_crls().await.unwrap();
    assert_eq!(signer_end(&pki), end);
    // 29 days before: renewed, ending later.
    clock.advance(2 * DAY);
    pki.invalidate();
    pki.renew_due_crls().await.unwrap();
    let renewed = signer_end(&pki);
    assert!(renewed > end, "renewed signer ends at {renewed}, the old one at {end}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_refused() {
    let clock = ManualClock::new(START);
    let (_dir, pki, _) = service(clock.clone()).await;
    let grant = TokenGrant {
        ttl_secs: Some(3600),
        ..TokenGrant::role(Role::Agent, "short-lived")
    };
    let token = pki.create_token(&Caller::node(), &grant).await.unwrap();
    assert_eq!(token.expires_at, Some(START + 3600));
    pki.authenticate(&token.token).unwrap();
    clock.advance(3599);
    pki.authenticate(&token.token).unwrap();
    clock.advance(1);
    let err = pki.authenticate(&token.token).unwrap_err();
    assert!(
        matches!(&err, super::PkiError::Unauthenticated(m) if m.contains("expired")),
        "{err}"
    );
}
