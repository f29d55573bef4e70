//! The web console's files, embedded in the binary and served at `/ui/` on the API
//! listener of every node: no download at run time, nothing from another origin. The
//! console is a client of the same JSON API as the CLI (it signs in with a token it keeps
//! in the tab's session storage and sends as a bearer token), so this module serves bytes
//! and headers only: a strict Content-Security-Policy (scripts, styles and requests from
//! this origin, no inline script, no framing), `nosniff`, no referrer, and an `ETag`
//! that a browser revalidates against.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

/// What the browser may load and run on a console page.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

/// One embedded file.
struct Asset {
    name: &'static str,
    bytes: &'static [u8],
}

macro_rules! assets {
    ($($name:literal),* $(,)?) => {
        &[$(Asset { name: $name, bytes: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/ui/", $name)) }),*]
    };
}

/// Every file of `ui/` (a test checks that none is left out).
static ASSETS: &[Asset] = assets![
    "index.html",
    "app.css",
    "app.js",
    "api.js",
    "session.js",
    "errors.js",
    "router.js",
    "dom.js",
    "format.js",
    "pem.js",
    "der.js",
    "cluster.js",
    "certs.js",
    "cert-detail.js",
    "issue.js",
    "cas.js",
    "expiry.js",
    "audit.js",
    "recovery.js",
];

/// A strong validator per file: the start of its SHA-256.
static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, a.bytes);
            HeaderValue::from_str(&format!("\"{}\"", hex::encode(&digest.as_ref()[..12])))
                .expect("hex is a header value")
        })
        .collect()
});

pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route(
            "/ui/",
            get(|headers: HeaderMap| async move { serve("index.html", &headers) }),
        )
        .route(
            "/ui/{file}",
            get(|Path(file): Path<String>, headers: HeaderMap| async move { serve(&file, &headers) }),
        )
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn serve(name: &str, headers: &HeaderMap) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.name == name) else {
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "no such console file; the console is at /ui/\n",
        )
            .into_response();
    };
    let etag = &ETAGS[i];
    let fresh = headers.get(header::IF_NONE_MATCH).is_some_and(|v| {
        v.as_bytes()
            .split(|b| *b == b',')
            .any(|t| t.trim_ascii() == etag.as_bytes())
    });
    let common = [
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (header::ETAG, etag.clone()),
    ];
    if fresh {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    let asset = &ASSETS[i];
    (
        common,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type(asset.name)))],
        asset.bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    async fn get(path: &str, etag: Option<&str>) -> Response {
        let mut req = Request::get(path);
        if let Some(tag) = etag {
            req = req.header(header::IF_NONE_MATCH, tag);
        }
        routes::<()>().oneshot(req.body(Body::empty()).unwrap()).await.unwrap()
    }

    #[test]
    fn every_file_of_the_console_is_embedded_and_the_whole_is_small() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = ASSETS.iter().map(|a| a.name.to_string()).collect();
        embedded.sort();
        assert_eq!(embedded, on_disk, "ui/ and the embedded list differ");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        for a in ASSETS {
            gz.write_all(a.bytes).unwrap();
        }
        let size = gz.finish().unwrap().len();
        assert!(size < 300 * 1024, "the console is {size} bytes gzipped");
    }

    #[test]
    fn no_page_runs_inline_script_or_loads_from_elsewhere() {
        let index = std::str::from_utf8(ASSETS[0].bytes).unwrap();
        for tag in index.split("<script").skip(1) {
            let open = &tag[..tag.find('>').unwrap()];
            assert!(open.contains("src=\"./"), "an inline or foreign script: <script{open}>");
        }
        for a in ASSETS {
            let text = std::str::from_utf8(a.bytes).unwrap();
            let foreign = [
                "src=\"http",
                "href=\"http",
                "from 'http",
                "from \"http",
                "fetch('http",
                "url(http",
            ];
            let inline = [
                " onclick=",
                " onload=",
                " style=\"",
                "eval(",
                "new Function",
                "localStorage.",
                "localStorage[",
                "document.cookie",
                "innerHTML",
            ];
            for bad in foreign.iter().chain(&inline) {
                assert!(!text.contains(bad), "{} contains {bad}", a.name);
            }
        }
    }

    #[tokio::test]
    async fn the_console_is_served_with_its_policy_and_revalidated_by_etag() {
        let res = get("/ui", None).await;
        assert_eq!(res.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(res.headers()[header::LOCATION], "/ui/");

        let res = get("/ui/", None).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(res.headers()[header::CONTENT_SECURITY_POLICY], CONTENT_SECURITY_POLICY);
        assert_eq!(res.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        let etag = res.headers()[header::ETAG].to_str().unwrap().to_string();

        let res = get("/ui/app.js", None).await;
        assert_eq!(res.headers()[header::CONTENT_TYPE], "text/javascript; charset=utf-8");
        assert_ne!(res.headers()[header::ETAG].to_str().unwrap(), etag);

        let res = get("/ui/index.html", Some(&etag)).await;
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
        let res = get("/ui/index.html", Some("\"other\"")).await;
        assert_eq!(res.status(), StatusCode::OK);

        for missing in ["/ui/nothing.js", "/ui/..%2fCargo.toml", "/ui/%2e%2e"] {
            assert_eq!(get(missing, None).await.status(), StatusCode::NOT_FOUND, "{missing}");
        }
    }
}
