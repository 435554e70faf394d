//! Refusing cross-origin changes behind a cookie login.
//!
//! With the key guard, a browser never attaches the key by itself, so another site
//! cannot make it act. Behind the application's login it attaches the session cookie
//! to any request to this server, including a form that another site submits. Browsers
//! say where a request comes from: `Sec-Fetch-Site` (every current browser) and, for
//! unsafe methods, `Origin`. An unsafe request (anything but `GET`, `HEAD`, `OPTIONS`)
//! is refused when
//!
//! - `Sec-Fetch-Site` is anything but `same-origin` or `none` (`same-site` too: a
//!   sibling subdomain may be someone else's), or
//! - there is no `Sec-Fetch-Site`, and `Origin` is present but is not this request's
//!   own scheme-less host (`Host`, or the URI's authority over HTTP/2), or is `null`.
//!
//! A request with neither header is not from a browser's cross-site context and passes;
//! the login layer still authenticates it.

use axum::extract::Request;
use axum::http::header::{HOST, ORIGIN};
use axum::http::{HeaderName, HeaderValue, Method};

use super::problem::AdminError;

static SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");

/// Passes safe methods and same-origin requests; refuses the rest with 403.
pub(super) async fn refuse_unsafe_cross_origin(request: Request) -> Result<Request, AdminError> {
    if is_safe(request.method()) || is_same_origin(&request) {
        Ok(request)
    } else {
        Err(AdminError::CrossOrigin)
    }
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn is_same_origin(request: &Request) -> bool {
    let headers = request.headers();
    if let Some(site) = headers.get(&SEC_FETCH_SITE) {
        return site == "same-origin" || site == "none";
    }
    let Some(origin) = headers.get(ORIGIN) else {
        return true;
    };
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()));
    match (origin_host(origin), host) {
        (Some(origin), Some(host)) => origin.eq_ignore_ascii_case(host),
        _ => false,
    }
}

/// The `host[:port]` of an `Origin` such as `https://example.com:8443`; `None` for
/// `null` or anything that is not `scheme://host`.
fn origin_host(origin: &HeaderValue) -> Option<&str> {
    let origin = origin.to_str().ok()?;
    let (_scheme, host) = origin.split_once("://")?;
    (!host.is_empty() && !host.contains('/')).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn request(method: Method, headers: &[(&str, &str)]) -> Request {
        let mut builder = Request::builder()
            .method(method)
            .uri("/keys")
            .header(HOST, "admin.example.com");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(Body::empty()).unwrap()
    }

    async fn allowed(method: Method, headers: &[(&str, &str)]) -> bool {
        refuse_unsafe_cross_origin(request(method, headers))
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn unsafe_requests_from_other_sites_are_refused() {
        for headers in [
            &[("sec-fetch-site", "cross-site")][..],
            &[("sec-fetch-site", "same-site")],
            // Sec-Fetch-Site wins over a matching Origin.
            &[
                ("sec-fetch-site", "cross-site"),
                ("origin", "https://admin.example.com"),
            ],
            &[("origin", "https://evil.example")],
            &[("origin", "null")],
            &[("origin", "https://admin.example.com.evil.example")],
        ] {
            assert!(!allowed(Method::POST, headers).await, "{headers:?}");
            assert!(!allowed(Method::DELETE, headers).await, "{headers:?}");
            assert!(!allowed(Method::PATCH, headers).await, "{headers:?}");
        }
    }

    #[tokio::test]
    async fn same_origin_safe_and_non_browser_requests_pass() {
        for headers in [
            &[("sec-fetch-site", "same-origin")][..],
            &[("sec-fetch-site", "none")],
            &[("origin", "https://admin.example.com")],
            &[("origin", "http://ADMIN.example.com")],
            &[],
        ] {
            assert!(allowed(Method::POST, headers).await, "{headers:?}");
        }
        assert!(allowed(Method::GET, &[("sec-fetch-site", "cross-site")]).await);
    }
}
