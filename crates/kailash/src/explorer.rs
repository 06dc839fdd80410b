//! The API explorer at `/docs`: Scalar's API reference (vendored, see
//! `assets/explorer/VENDORED.md`) rendering `/openapi.json`, with "try it"
//! requests sent straight to this gateway.
//!
//! Everything is served from memory, so the page works offline and loads
//! nothing from another origin:
//!
//! - `GET /docs`: the HTML page (title, version and description of the
//!   document, HTML-escaped; no inline script or style).
//! - `GET /docs/explorer.js`: the renderer's configuration and start-up,
//!   generated once (a separate script, so the policy needs no
//!   `'unsafe-inline'` for scripts).
//! - `GET /docs/assets/scalar-api-reference-<version>.js`: the renderer,
//!   byte for byte as published; the version in the path makes it safe to
//!   cache for a year.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use serde_json::json;

/// The vendored renderer's package version (`@scalar/api-reference`).
pub(crate) const SCALAR_VERSION: &str = "1.76.0";

/// The renderer's browser bundle, unchanged from the npm package.
const SCALAR_JS: &[u8] = include_bytes!("../assets/explorer/scalar-api-reference.js");

/// The path of the renderer's bundle, versioned so it can be cached for good.
pub(crate) fn scalar_path() -> String {
    format!("/docs/assets/scalar-api-reference-{SCALAR_VERSION}.js")
}

/// The policy of every `/docs` response.
///
/// - `default-src 'none'`: nothing is allowed unless named below.
/// - `script-src 'self'`: the bundle and the generated start-up script, no
///   inline script, no `eval`.
/// - `style-src 'self' 'unsafe-inline'`: the renderer injects its
///   stylesheet as a `<style>` element at run time and its components
///   (Vue, CodeMirror) set `style` attributes; neither can carry a hash.
///   Inline styles cannot run code.
/// - `img-src 'self' data:`: the renderer's icons and images are inline
///   `data:` URIs, and so is the page's (empty) icon, which keeps the
///   browser from asking for `/favicon.ico`.
/// - `font-src 'self'`: no remote fonts (`withDefaultFonts` is off); the
///   page uses the system fonts.
/// - `connect-src 'self'`: the document and "try it" requests go to this
///   gateway only; no proxy, telemetry or registry.
/// - `frame-ancestors 'none'`, `base-uri 'none'`, `form-action 'none'`:
///   no framing, no `<base>` rewriting, no form posts.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Routes of the explorer for a document with this `info`.
pub(crate) fn routes(info: &utoipa::openapi::Info) -> Router {
    let html = Bytes::from(page_html(info));
    let script = Bytes::from(explorer_js());
    Router::new()
        .route("/docs", get(page))
        .with_state(html)
        .route(
            "/docs/explorer.js",
            get(move || {
                let script = script.clone();
                async move { asset(script, "text/javascript; charset=utf-8", false) }
            }),
        )
        .route(
            &scalar_path(),
            get(|| async {
                asset(
                    Bytes::from_static(SCALAR_JS),
                    "text/javascript; charset=utf-8",
                    true,
                )
            }),
        )
}

/// `GET /docs`: the explorer's page.
#[utoipa::path(
    get,
    path = "/docs",
    tag = "operations",
    operation_id = "docs",
    security(()),
    responses((status = 200, description = "The API explorer: renders this document, with a bearer-token \"try it\"", content_type = "text/html", body = String)),
)]
pub(crate) async fn page(State(html): State<Bytes>) -> Response {
    asset(html, "text/html; charset=utf-8", false)
}

fn asset(body: Bytes, content_type: &'static str, immutable: bool) -> Response {
    // The page and its configuration follow the gateway's configuration,
    // so a browser revalidates them; the bundle's path names its version.
    let cache = if immutable {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
        ],
        body,
    )
        .into_response()
}

/// The page: static markup, with the document's title, version and
/// description escaped into it (shown until the renderer has started, and
/// to browsers without JavaScript).
fn page_html(info: &utoipa::openapi::Info) -> String {
    let title = escape(&info.title);
    let version = escape(&info.version);
    let description = info
        .description
        .as_deref()
        .map(|d| format!("<p>{}</p>", escape(d)))
        .unwrap_or_default();
    let meta_description = info
        .description
        .as_deref()
        .map(|d| format!("<meta name=\"description\" content=\"{}\">\n", escape(d)))
        .unwrap_or_default();
    let scalar = scalar_path();
    // Paths are relative to `/docs`, so the page also works behind a proxy
    // that mounts the gateway under a prefix.
    let scalar = scalar.trim_start_matches('/');
    format!(
        "<!doctype html>
<html lang=\"en\">
<head>
<meta charset=\"utf-8\">
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">
<meta name=\"referrer\" content=\"no-referrer\">
<link rel=\"icon\" href=\"data:,\">
<title>{title} {version} — API explorer</title>
{meta_description}</head>
<body>
<div id=\"explorer\">
<header>
<h1>{title} <small>{version}</small></h1>
{description}
<p>The OpenAPI document: <a href=\"openapi.json\">openapi.json</a>.</p>
<noscript><p>The explorer needs JavaScript.</p></noscript>
</header>
</div>
<script src=\"docs/explorer.js\"></script>
<script src=\"{scalar}\"></script>
</body>
</html>
"
    )
}

/// The renderer's start-up script: its configuration as a JSON literal.
fn explorer_js() -> String {
    // Everything that would reach another origin is off: remote fonts,
    // telemetry, the request proxy, the AI agent and MCP panels, Scalar's
    // hosted services. "Try it" requests go to the document's servers, or
    // to this origin when it names none.
    let config = json!({
        "url": "openapi.json",
        "withDefaultFonts": false,
        "telemetry": false,
        "showDeveloperTools": "never",
        "hideClientButton": true,
        "persistAuth": false,
        "documentDownloadType": "json",
        "defaultOpenAllTags": true,
        "agent": { "disabled": true },
        "mcp": { "disabled": true },
        "externalUrls": {
            "dashboardUrl": "",
            "registryUrl": "",
            "proxyUrl": "",
            "apiBaseUrl": ""
        },
        "authentication": { "preferredSecurityScheme": "bearer" }
    });
    // This script runs before the bundle (so it can set the validation
    // library's options first) and starts the renderer once the bundle has
    // run. zod's `jitless` stops it from probing `Function("")`, which the
    // policy refuses (and reports) since it allows no `eval`.
    format!(
        "// Generated by the kailash gateway: starts the API explorer.\n\
         \"use strict\";\n\
         (function () {{\n\
         var zod = (window.__zod_globalConfig = window.__zod_globalConfig || {{}});\n\
         zod.jitless = true;\n\
         var config = {config};\n\
         document.addEventListener(\"DOMContentLoaded\", function () {{\n\
         var mount = document.getElementById(\"explorer\");\n\
         if (!window.Scalar || !mount) {{ return; }}\n\
         mount.textContent = \"\";\n\
         window.Scalar.createApiReference(mount, config);\n\
         }});\n\
         }})();\n"
    )
}

/// HTML-escapes text for element content and quoted attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape(r#"<a href="x">&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn page_escapes_info() {
        let mut info = utoipa::openapi::Info::new("<b>API</b>", "1.0\"");
        info.description = Some("a & b".into());
        let html = page_html(&info);
        assert!(html.contains("&lt;b&gt;API&lt;/b&gt;"));
        assert!(html.contains("1.0&quot;"));
        assert!(html.contains("<p>a &amp; b</p>"));
        assert!(!html.contains("<b>"));
        assert!(!html.contains("<script>"), "no inline script");
    }

    #[test]
    fn bundle_is_the_vendored_version() {
        let vendored = include_str!("../assets/explorer/VENDORED.md");
        assert!(vendored.contains(&format!("@scalar/api-reference@{SCALAR_VERSION}")));
        assert!(SCALAR_JS.len() > 1_000_000);
    }
}
