//! Why a request was refused, and the response that says so: one row per kind of
//! refusal, and the answers prebuilt from the rows. The table of answers is in the
//! [`middleware`](super#refusals) docs.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Version};

use crate::header::{HeaderError, SCHEME};
use crate::key::KeyFormatError;
use crate::metrics;
use crate::middleware::interned;
use crate::middleware::response_body::ResponseBody;
use crate::outcome::Outcome;
use crate::problem::{self, PROBLEM_JSON, Problem};
use crate::scope::Scopes;

/// The realm in challenges unless configured.
pub(crate) const DEFAULT_REALM: &str = "api";

static GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
static GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

/// What was wrong with a refused request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectionKind {
    /// No `Authorization` header at all.
    MissingCredentials,
    /// An `Authorization` header that is not one `ApiKey-v2 <token68>` field.
    InvalidRequest(HeaderError),
    /// A key that fails the format or checksum check; the store was not asked.
    MalformedKey(KeyFormatError),
    /// An unknown key id or a wrong secret: one answer for both, so that a caller who
    /// does not hold the key learns nothing about which ids exist.
    InvalidKey,
    /// The key is proven but past its `expires_at`.
    Expired,
    /// The key is proven but past its `ends_at`: a rotation replaced it and its overlap
    /// is over.
    Ended,
    /// The key is proven but revoked.
    Revoked,
    /// The key is valid but lacks these required scopes.
    InsufficientScope(Scopes),
    /// The client's address sent too many wrong keys recently (see
    /// [`FailureThrottle`](crate::middleware::FailureThrottle)); the key was not looked up.
    Throttled {
        /// How long until the address may try again: whole seconds, at least one; the
        /// answer's `Retry-After`.
        retry_after: Duration,
    },
    /// The key is valid but restricted to addresses ([`KeyRecord::allowed_ips`]) that
    /// the client's is not among, or the server recorded no client address.
    ///
    /// [`KeyRecord::allowed_ips`]: crate::KeyRecord::allowed_ips
    AddressNotAllowed,
    /// The key is valid but over its [`RateLimit`](crate::record::RateLimit); nothing was
    /// consumed.
    RateLimited {
        /// How long until a request would be admitted, in whole seconds rounded up: the
        /// answer's `Retry-After`.
        retry_after: Duration,
    },
    /// The key is valid but its [`Quota`](crate::record::Quota) for the current UTC period is
    /// used up.
    QuotaExceeded {
        /// How long until the period ends and the quota resets, in whole seconds
        /// rounded up: the answer's `Retry-After`.
        retry_after: Duration,
    },
    /// The key store could not answer; the request is refused, not let through.
    StoreUnavailable,
    /// The lookup was shed before it reached the store ([`StoreError::Overloaded`]): too
    /// many distinct lookups were in flight. Refused at once, like
    /// [`StoreUnavailable`](Self::StoreUnavailable), so that a flood cannot queue real
    /// keys behind it.
    ///
    /// [`StoreError::Overloaded`]: crate::StoreError::Overloaded
    Overloaded,
}

/// Whether a request is a gRPC call, which gets a gRPC status answer: an HTTP/2 request
/// whose `content-type` is a gRPC one ([`is_grpc_content_type`]). gRPC runs only over
/// HTTP/2; over HTTP/1.1, or with any other content type, a header must not turn
/// refusals into 200s in access logs (DESIGN §3).
pub(crate) fn is_grpc(version: Version, headers: &HeaderMap) -> bool {
    version == Version::HTTP_2
        && headers
            .get(CONTENT_TYPE)
            .is_some_and(|ct| is_grpc_content_type(ct.as_bytes()))
}

/// `application/grpc`, alone or followed by `+` (a message format, as in
/// `application/grpc+proto`) or `;` (parameters): the content types of the gRPC
/// protocol. A mere prefix is not enough: `application/grpcXYZ` is not gRPC, and its
/// refusals are plain HTTP ones.
fn is_grpc_content_type(value: &[u8]) -> bool {
    value
        .strip_prefix(b"application/grpc")
        .is_some_and(|rest| matches!(rest.first(), None | Some(b'+' | b';')))
}

/// How one kind of refusal is answered: its row in the module's table. Every fact about
/// a kind lives in its row, written once in the [`rows!`] list below.
#[derive(Debug)]
struct Row {
    status: StatusCode,
    /// The RFC 6750 `error` code, in the challenge (and the problem document).
    code: Option<&'static str>,
    /// Whether the answer carries a `WWW-Authenticate` challenge: not for answers that
    /// are not about the key (429, 503).
    challenge: bool,
    /// Whether the answer carries `Retry-After`.
    retry: bool,
    grpc: u16,
    /// The outcome, in logs and metrics (DESIGN §13).
    outcome: Outcome,
    /// A short sentence for the caller. It never contains the key.
    description: &'static str,
}

/// Declares the rows, and the [`Slot`] that names each one, from one list: a new kind of
/// refusal is one line here and one arm in [`RejectionKind::slot`], and nothing can
/// fall out of step.
macro_rules! rows {
    ($($slot:ident => $status:ident, $code:expr, challenge: $challenge:expr, retry: $retry:expr,
        grpc: $grpc:expr, $outcome:ident, $description:expr;)*) => {
        /// A row of [`ROWS`], by name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum Slot { $($slot),* }

        const ROWS: &[Row] = &[$(Row {
            status: StatusCode::$status,
            code: $code,
            challenge: $challenge,
            retry: $retry,
            grpc: $grpc,
            outcome: Outcome::$outcome,
            description: $description,
        }),*];
    };
}

rows! {
    Missing => UNAUTHORIZED, None, challenge: true, retry: false, grpc: 16, Missing,
        "an API key is required: send Authorization: ApiKey-v2 <key>";
    MultipleHeaders => UNAUTHORIZED, Some("invalid_request"), challenge: true, retry: false,
        grpc: 16, InvalidRequest, "send exactly one Authorization header";
    HeaderTooLong => UNAUTHORIZED, Some("invalid_request"), challenge: true, retry: false,
        grpc: 16, InvalidRequest, "the Authorization header is too long";
    OtherScheme => UNAUTHORIZED, Some("invalid_request"), challenge: true, retry: false,
        grpc: 16, InvalidRequest, "the Authorization header must use the ApiKey-v2 scheme";
    MalformedHeader => UNAUTHORIZED, Some("invalid_request"), challenge: true, retry: false,
        grpc: 16, InvalidRequest, "the Authorization header must be ApiKey-v2 <key>";
    BadChecksum => UNAUTHORIZED, Some("invalid_token"), challenge: true, retry: false,
        grpc: 16, InvalidKey,
        "the key's checksum does not match; check that it was copied whole";
    WrongPrefix => UNAUTHORIZED, Some("invalid_token"), challenge: true, retry: false,
        grpc: 16, InvalidKey, "the key's prefix is not one this service issues";
    MalformedKey => UNAUTHORIZED, Some("invalid_token"), challenge: true, retry: false,
        grpc: 16, InvalidKey, "the key is malformed";
    InvalidKey => UNAUTHORIZED, Some("invalid_token"), challenge: true, retry: false,
        grpc: 16, InvalidKey, "the key is not valid";
    Expired => UNAUTHORIZED, Some("invalid_token"), challenge: true, retry: false,
        grpc: 16, Expired, "the key has expired";
    Ended => UNAUTHORIZED, Some("invalid_token"), challenge: true, retry: false,
        grpc: 16, Expired, "the key was ended by rotation; use the key that replaced it";
    Revoked => UNAUTHORIZED, Some("invalid_token"), challenge: true, retry: false,
        grpc: 16, Revoked, "the key has been revoked";
    InsufficientScope => FORBIDDEN, Some("insufficient_scope"), challenge: true, retry: false,
        grpc: 7, InsufficientScope, "the key lacks a required scope";
    AddressNotAllowed => FORBIDDEN, Some("address_not_allowed"), challenge: false,
        retry: false, grpc: 7, AddressNotAllowed,
        "the key may not be used from this address";
    RateLimited => TOO_MANY_REQUESTS, Some("rate_limited"), challenge: false, retry: true,
        grpc: 8, RateLimited,
        "the key's rate limit is reached; try again after Retry-After seconds";
    QuotaExceeded => TOO_MANY_REQUESTS, Some("quota_exceeded"), challenge: false,
        retry: true, grpc: 8, QuotaExceeded,
        "the key's quota for this period is used up; it resets after Retry-After seconds";
    Throttled => TOO_MANY_REQUESTS, Some("throttled"), challenge: false, retry: true,
        grpc: 8, Throttled,
        "too many invalid keys from this address; try again after Retry-After seconds";
    StoreUnavailable => SERVICE_UNAVAILABLE, None, challenge: false, retry: true,
        grpc: 14, StoreUnavailable, "the key store is unavailable; try again shortly";
    Overloaded => SERVICE_UNAVAILABLE, None, challenge: false, retry: true,
        grpc: 14, Overloaded, "the service is busy; try again shortly";
}

impl Slot {
    fn row(self) -> &'static Row {
        &ROWS[self as usize]
    }
}

impl RejectionKind {
    /// The HTTP status of the answer.
    pub fn status(&self) -> StatusCode {
        self.row().status
    }

    /// The RFC 6750 `error` code, if the answer carries one (and `throttled` for a
    /// throttled address, in its problem document only).
    pub fn error_code(&self) -> Option<&'static str> {
        self.row().code
    }

    /// A short sentence for the caller. It never contains the key.
    pub fn description(&self) -> &'static str {
        self.row().description
    }

    /// The gRPC status code of the answer to a gRPC request.
    pub fn grpc_status(&self) -> u16 {
        self.row().grpc
    }

    /// The outcome's name, as logs (and metrics) call it: `missing`, `invalid_request`,
    /// `invalid_key`, `expired`, `revoked`, `insufficient_scope`, `address_not_allowed`,
    /// `rate_limited`, `quota_exceeded`, `throttled`, `overloaded`, `store_unavailable`
    /// (DESIGN §13).
    ///
    /// Some kinds share an outcome: a key ended by rotation ([`Ended`](Self::Ended)) is
    /// `expired`, a malformed key or a bad checksum is `invalid_key`, every header
    /// problem is `invalid_request`.
    pub fn outcome(&self) -> &'static str {
        self.row().outcome.as_str()
    }

    /// The outcome, for the metrics.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn outcome_kind(&self) -> Outcome {
        self.row().outcome
    }

    fn row(&self) -> &'static Row {
        self.slot().row()
    }

    /// The row that answers this kind.
    fn slot(&self) -> Slot {
        match self {
            Self::MissingCredentials => Slot::Missing,
            Self::InvalidRequest(HeaderError::Multiple) => Slot::MultipleHeaders,
            Self::InvalidRequest(HeaderError::TooLong) => Slot::HeaderTooLong,
            Self::InvalidRequest(HeaderError::OtherScheme) => Slot::OtherScheme,
            Self::InvalidRequest(_) => Slot::MalformedHeader,
            Self::MalformedKey(KeyFormatError::Checksum) => Slot::BadChecksum,
            Self::MalformedKey(KeyFormatError::Prefix) => Slot::WrongPrefix,
            Self::MalformedKey(_) => Slot::MalformedKey,
            Self::InvalidKey => Slot::InvalidKey,
            Self::Expired => Slot::Expired,
            Self::Ended => Slot::Ended,
            Self::Revoked => Slot::Revoked,
            Self::InsufficientScope(_) => Slot::InsufficientScope,
            Self::AddressNotAllowed => Slot::AddressNotAllowed,
            Self::RateLimited { .. } => Slot::RateLimited,
            Self::QuotaExceeded { .. } => Slot::QuotaExceeded,
            Self::Throttled { .. } => Slot::Throttled,
            Self::StoreUnavailable => Slot::StoreUnavailable,
            Self::Overloaded => Slot::Overloaded,
        }
    }
}

/// The answer of one row, prebuilt: the headers of its HTTP and its gRPC answer, and its
/// problem document. Every value is kept for the process's life ([`interned`]), so
/// copying an answer touches no reference count.
#[derive(Clone, Debug)]
struct Prebuilt {
    http: HeaderMap,
    grpc: HeaderMap,
    problem: &'static str,
}

impl Prebuilt {
    fn new(realm: &HeaderValue, row: &Row, missing: Option<&Scopes>) -> Self {
        Self {
            http: headers_for(realm, row, missing, false, Keep::Kept),
            grpc: headers_for(realm, row, missing, true, Keep::Kept),
            problem: interned::text(problem_for(row, missing)),
        }
    }

    /// The headers of the answer, written into `reuse` (the refused request's own map,
    /// cleared) when it has room, so that a refusal allocates no header map of its own;
    /// otherwise a copy of the prebuilt map.
    #[inline]
    fn headers(&self, grpc: bool, mut reuse: HeaderMap) -> HeaderMap {
        let prebuilt = if grpc { &self.grpc } else { &self.http };
        if reuse.capacity() < prebuilt.len() {
            return prebuilt.clone();
        }
        reuse.clear();
        for (name, value) in prebuilt {
            reuse.insert(name.clone(), value.clone());
        }
        reuse
    }
}

/// The parts of the answers that depend only on the realm (and the layer's required
/// scopes), built once when the layer is configured, so that refusing a request formats
/// and allocates nothing.
#[derive(Clone, Debug)]
pub(crate) struct Answers {
    /// `ApiKey-v2 realm="…"`.
    realm: HeaderValue,
    /// The answer of each row. The answers that depend on the request (the missing
    /// scopes, a throttle's wait) start from theirs.
    fixed: Arc<[Prebuilt]>,
    /// `Retry-After` values from 0 to 60 seconds, the waits a failure throttle gives,
    /// so that refusing a throttled address (what a flood gets) formats nothing.
    retry_after: Arc<[HeaderValue]>,
    /// The answer to a key that lacks all of the route's required scopes (the usual
    /// missing-scope refusal), prebuilt like the fixed ones.
    missing_all: Option<Arc<(Scopes, Prebuilt)>>,
}

impl Answers {
    /// # Panics
    ///
    /// If the realm holds `"`, `\` or a character that is not visible ASCII or space: it
    /// is configuration, and a realm that cannot be sent is a bug to catch at start-up.
    pub(crate) fn new(realm: &str) -> Self {
        assert!(
            realm
                .bytes()
                .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\'),
            "the realm must be printable ASCII without '\"' or '\\'; got {realm:?}"
        );
        let realm =
            interned::header_value(format!("{SCHEME} realm=\"{realm}\"")).expect("checked above");
        let fixed = ROWS
            .iter()
            .map(|row| Prebuilt::new(&realm, row, None))
            .collect();
        Self {
            realm,
            fixed,
            retry_after: (0..=60u64)
                .map(|secs| interned::header_value(secs.to_string()).expect("digits"))
                .collect(),
            missing_all: None,
        }
    }

    /// These answers, with the refusal of a key that lacks every scope of `required`
    /// prebuilt (none when nothing is required).
    pub(crate) fn requiring(mut self, required: &Scopes) -> Self {
        self.missing_all = (!required.is_empty()).then(|| {
            let row = Slot::InsufficientScope.row();
            Arc::new((
                required.clone(),
                Prebuilt::new(&self.realm, row, Some(required)),
            ))
        });
        self
    }

    /// `Retry-After: <wait>`, in whole seconds.
    fn retry_after(&self, wait: Duration) -> HeaderValue {
        let secs = wait.as_secs();
        usize::try_from(secs)
            .ok()
            .and_then(|i| self.retry_after.get(i))
            .cloned()
            .unwrap_or_else(|| HeaderValue::from(secs))
    }
}

/// Whether a header value built for an answer is kept for the process's life (the
/// prebuilt answers: configuration) or made for one request (a key missing only some of
/// the required scopes), which must not make memory grow with requests.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keep {
    Kept,
    Fresh,
}

impl Keep {
    fn value(self, text: String) -> Option<HeaderValue> {
        match self {
            Self::Kept => interned::header_value(text),
            Self::Fresh => HeaderValue::try_from(text).ok(),
        }
    }
}

/// Every header of the default answer of `row`, naming the `missing` scopes if any.
fn headers_for(
    realm: &HeaderValue,
    row: &Row,
    missing: Option<&Scopes>,
    grpc: bool,
    keep: Keep,
) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(6);
    // A refusal answers this request only: no cache may keep it for the next
    // (DESIGN §3), whether a challenge, a problem document or a gRPC status.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if grpc {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert(
            GRPC_STATUS.clone(),
            keep.value(row.grpc.to_string()).expect("digits"),
        );
        // What the HTTP answer says, the missing scopes included. Scopes are visible
        // ASCII by their grammar, so nothing needs percent-encoding.
        let message = match missing {
            Some(missing) => keep
                .value(format!("{}: {missing}", row.description))
                .unwrap_or_else(|| HeaderValue::from_static(row.description)),
            None => HeaderValue::from_static(row.description),
        };
        headers.insert(GRPC_MESSAGE.clone(), message);
    } else {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    }
    if row.challenge {
        headers.insert(WWW_AUTHENTICATE, challenge_for(realm, row, missing, keep));
    }
    if row.retry {
        headers.insert(RETRY_AFTER, problem::retry_after());
    }
    headers
}

/// The `WWW-Authenticate` value of `row`, naming the `missing` scopes if any.
fn challenge_for(
    realm: &HeaderValue,
    row: &Row,
    missing: Option<&Scopes>,
    keep: Keep,
) -> HeaderValue {
    let Some(code) = row.code else {
        return realm.clone();
    };
    // The realm is checked visible ASCII at configuration.
    let mut value = realm.to_str().unwrap_or_default().to_owned();
    for part in [
        ", error=\"",
        code,
        "\", error_description=\"",
        row.description,
        "\"",
    ] {
        value.push_str(part);
    }
    if let Some(missing) = missing {
        value.push_str(&format!(", scope=\"{missing}\""));
    }
    // Every part is checked ASCII without quotes or controls: the realm at
    // configuration, scopes by their grammar, the rest are literals.
    keep.value(value).unwrap_or_else(|| realm.clone())
}

/// The RFC 9457 problem document of `row`, naming the `missing` scopes if any.
fn problem_for(row: &Row, missing: Option<&Scopes>) -> String {
    let mut problem = Problem::new(row.status, row.description);
    if let Some(code) = row.code {
        problem = problem.string("error", code);
    }
    if let Some(missing) = missing {
        problem = problem.string("scope", &missing.to_string());
    }
    problem.finish()
}

/// A refused request: what was wrong, and what the default answer looks like.
///
/// A custom [`OnRejection`] handler receives this and may start from
/// [`Rejection::into_response`].
#[derive(Clone)]
pub struct Rejection {
    kind: RejectionKind,
    grpc: bool,
    headers: HeaderMap,
    problem: Bytes,
}

impl Rejection {
    /// The rejection of `req` (a gRPC call gets a gRPC answer). The request is refused,
    /// so its header map is taken to carry the answer's headers. Every refusal of the
    /// layer, before or after the lookup, passes here: it is counted here, once.
    #[inline]
    pub(crate) fn of<B>(kind: RejectionKind, answers: &Answers, req: &mut Request<B>) -> Self {
        metrics::refused(kind.outcome_kind());
        let grpc = is_grpc(req.version(), req.headers());
        Self::new(kind, grpc, answers, std::mem::take(req.headers_mut()))
    }

    /// The refusal of `kind`; its headers are written into `reuse` (the refused
    /// request's header map, which the request no longer needs) when it has room.
    #[inline]
    pub(crate) fn new(
        kind: RejectionKind,
        grpc: bool,
        answers: &Answers,
        reuse: HeaderMap,
    ) -> Self {
        let row = kind.row();
        let (headers, problem) = match &kind {
            RejectionKind::InsufficientScope(missing) => match answers.missing_all.as_deref() {
                Some((all, prebuilt)) if all == missing => (
                    prebuilt.headers(grpc, reuse),
                    Bytes::from_static(prebuilt.problem.as_bytes()),
                ),
                // A key missing only some of the scopes: an answer of its own.
                _ => (
                    headers_for(&answers.realm, row, Some(missing), grpc, Keep::Fresh),
                    Bytes::from(problem_for(row, Some(missing))),
                ),
            },
            _ => {
                let prebuilt = &answers.fixed[kind.slot() as usize];
                let mut headers = prebuilt.headers(grpc, reuse);
                if let RejectionKind::Throttled { retry_after }
                | RejectionKind::RateLimited { retry_after }
                | RejectionKind::QuotaExceeded { retry_after } = &kind
                {
                    // The one part of a fixed answer that changes per request.
                    headers.insert(RETRY_AFTER, answers.retry_after(*retry_after));
                }
                (headers, Bytes::from_static(prebuilt.problem.as_bytes()))
            }
        };
        Self {
            kind,
            grpc,
            headers,
            problem,
        }
    }

    /// What was wrong.
    pub fn kind(&self) -> &RejectionKind {
        &self.kind
    }

    /// Whether the request was a gRPC call: HTTP/2 with `content-type`
    /// `application/grpc`, `application/grpc+…` or `application/grpc;…`.
    pub fn is_grpc(&self) -> bool {
        self.grpc
    }

    /// The `WWW-Authenticate` value of the default answer, or `None` for a 503.
    pub fn www_authenticate(&self) -> Option<&HeaderValue> {
        self.headers.get(WWW_AUTHENTICATE)
    }

    /// The headers of the default answer.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The headers, to add what the verdict knows beyond the kind (the `RateLimit`
    /// headers of a limited key).
    pub(crate) fn headers_mut(&mut self) -> &mut HeaderMap {
        &mut self.headers
    }

    /// The RFC 9457 problem document (JSON) of the default HTTP answer.
    pub fn problem_json(&self) -> &str {
        std::str::from_utf8(&self.problem).expect("problem documents are built as UTF-8")
    }

    /// The default answer, as the module table describes: the problem document in the
    /// body of an HTTP answer, an empty body for a gRPC one. It fits any inner body type
    /// `B`, since the answer is the layer's own [`ResponseBody`].
    #[inline]
    pub fn into_response<B>(self) -> Response<ResponseBody<B>> {
        let (status, body) = if self.grpc {
            // Trailers-only: the status travels in the headers of an HTTP 200.
            (StatusCode::OK, ResponseBody::default())
        } else {
            (self.kind.status(), ResponseBody::answer(self.problem))
        };
        let mut response = Response::new(body);
        *response.status_mut() = status;
        *response.headers_mut() = self.headers;
        response
    }
}

impl fmt::Debug for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rejection")
            .field("kind", &self.kind)
            .field("grpc", &self.grpc)
            .finish()
    }
}

/// Makes the answer to a refused request.
///
/// Implemented by [`DefaultRejection`] and by any
/// `Fn(Rejection) -> http::Response<ResponseBody<B>> + Clone + Send + Sync + 'static`,
/// where `B` is the inner service's body type. Start from
/// [`Rejection::into_response`], or write another body with [`ResponseBody::new`]:
///
/// ```
/// use tower_apikey::{ApiKeyV2Layer, InMemoryKeyStore};
/// use tower_apikey::middleware::{Rejection, ResponseBody};
///
/// let layer = ApiKeyV2Layer::new(InMemoryKeyStore::new()).on_rejection(|rejection: Rejection| {
///     let mut response = rejection.into_response::<String>();
///     response.headers_mut().insert("x-docs", "https://example.com/auth".parse().unwrap());
///     response
/// });
/// # let _: ResponseBody<String> = ResponseBody::new(String::new());
/// ```
pub trait OnRejection<B>: Clone + Send + Sync + 'static {
    /// The response for `rejection`.
    fn on_rejection(&self, rejection: Rejection) -> Response<ResponseBody<B>>;
}

/// The default answer: [`Rejection::into_response`].
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultRejection;

impl<B> OnRejection<B> for DefaultRejection {
    #[inline]
    fn on_rejection(&self, rejection: Rejection) -> Response<ResponseBody<B>> {
        rejection.into_response()
    }
}

impl<B, F> OnRejection<B> for F
where
    F: Fn(Rejection) -> Response<ResponseBody<B>> + Clone + Send + Sync + 'static,
{
    fn on_rejection(&self, rejection: Rejection) -> Response<ResponseBody<B>> {
        self(rejection)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::middleware::response_body::collect;
    use crate::problem::RETRY_AFTER_SECS;

    type Answer = Response<ResponseBody<String>>;

    fn reject(kind: RejectionKind, grpc: bool) -> Rejection {
        Rejection::new(kind, grpc, &Answers::new("api"), HeaderMap::new())
    }

    #[test]
    fn a_grpc_refusal_for_a_missing_scope_names_the_scope_in_grpc_message() {
        let missing = Scopes::new(["reports:write"]).unwrap();
        let r = reject(RejectionKind::InsufficientScope(missing), true);
        assert_eq!(r.headers()["grpc-status"], "7");
        assert_eq!(
            r.headers()["grpc-message"],
            "the key lacks a required scope: reports:write"
        );
    }

    #[test]
    fn the_prebuilt_missing_scope_answer_is_the_one_built_per_request() {
        let required = Scopes::new(["reports:read", "reports:write"]).unwrap();
        let answers = Answers::new("api").requiring(&required);
        let row = Slot::InsufficientScope.row();
        for grpc in [false, true] {
            let prebuilt = Rejection::new(
                RejectionKind::InsufficientScope(required.clone()),
                grpc,
                &answers,
                HeaderMap::new(),
            );
            assert_eq!(
                prebuilt.headers(),
                &headers_for(&answers.realm, row, Some(&required), grpc, Keep::Kept)
            );
            assert_eq!(prebuilt.problem_json(), problem_for(row, Some(&required)));
        }
        // A key missing only some of them gets its own answer, naming those.
        let some = Scopes::new(["reports:write"]).unwrap();
        let r = Rejection::new(
            RejectionKind::InsufficientScope(some),
            false,
            &answers,
            HeaderMap::new(),
        );
        assert!(
            r.problem_json().contains(r#""scope":"reports:write""#),
            "{}",
            r.problem_json()
        );
    }

    #[test]
    fn a_refusal_in_the_requests_header_map_carries_only_its_own_headers() {
        let answers = Answers::new("api").requiring(&Scopes::new(["a:b"]).unwrap());
        let kinds = [
            RejectionKind::InvalidKey,
            RejectionKind::StoreUnavailable,
            RejectionKind::InsufficientScope(Scopes::new(["a:b"]).unwrap()),
            RejectionKind::Throttled {
                retry_after: Duration::from_secs(7),
            },
        ];
        for kind in kinds {
            for grpc in [false, true] {
                let mut request = HeaderMap::new();
                request.insert("cookie", HeaderValue::from_static("session=secret"));
                request.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
                request.insert("authorization", HeaderValue::from_static("ApiKey-v2 x"));
                let reused = Rejection::new(kind.clone(), grpc, &answers, request);
                let fresh = Rejection::new(kind.clone(), grpc, &answers, HeaderMap::new());
                assert_eq!(reused.headers(), fresh.headers(), "{kind:?} grpc={grpc}");
                assert!(!reused.headers().contains_key("cookie"));
            }
        }
    }

    #[test]
    fn only_grpc_content_types_over_http2_are_grpc_calls() {
        let cases: [(&[u8], bool); 11] = [
            (b"application/grpc", true),
            (b"application/grpc+proto", true),
            (b"application/grpc+json", true),
            (b"application/grpc;charset=utf-8", true),
            (b"application/grpcXYZ", false),
            (b"application/grpc-web", false),
            (b"application/grpc-web+proto", false),
            (b"application/grp", false),
            (b"Application/gRPC", false),
            (b" application/grpc", false),
            (b"text/plain; application/grpc", false),
        ];
        for (value, grpc) in cases {
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, HeaderValue::from_bytes(value).unwrap());
            assert_eq!(is_grpc(Version::HTTP_2, &headers), grpc, "{value:?}");
            assert!(
                !is_grpc(Version::HTTP_11, &headers),
                "{value:?} over HTTP/1.1"
            );
        }
        assert!(!is_grpc(Version::HTTP_2, &HeaderMap::new()));
    }

    #[test]
    fn every_refusal_says_no_store() {
        let answers = Answers::new("api").requiring(&Scopes::new(["a:b", "c:d"]).unwrap());
        let wait = Duration::from_secs(3);
        let kinds = [
            RejectionKind::MissingCredentials,
            RejectionKind::InvalidRequest(HeaderError::Multiple),
            RejectionKind::InvalidRequest(HeaderError::TooLong),
            RejectionKind::InvalidRequest(HeaderError::OtherScheme),
            RejectionKind::InvalidRequest(HeaderError::Malformed),
            RejectionKind::MalformedKey(KeyFormatError::Checksum),
            RejectionKind::MalformedKey(KeyFormatError::Prefix),
            RejectionKind::MalformedKey(KeyFormatError::Alphabet),
            RejectionKind::InvalidKey,
            RejectionKind::Expired,
            RejectionKind::Ended,
            RejectionKind::Revoked,
            // Every scope missing (the prebuilt answer), and some (built per request).
            RejectionKind::InsufficientScope(Scopes::new(["a:b", "c:d"]).unwrap()),
            RejectionKind::InsufficientScope(Scopes::new(["c:d"]).unwrap()),
            RejectionKind::AddressNotAllowed,
            RejectionKind::RateLimited { retry_after: wait },
            RejectionKind::QuotaExceeded { retry_after: wait },
            RejectionKind::Throttled { retry_after: wait },
            RejectionKind::StoreUnavailable,
            RejectionKind::Overloaded,
        ];
        let mut rows = std::collections::HashSet::new();
        for kind in kinds {
            rows.insert(kind.slot() as usize);
            for grpc in [false, true] {
                let answer: Answer =
                    Rejection::new(kind.clone(), grpc, &answers, HeaderMap::new()).into_response();
                let values: Vec<_> = answer.headers().get_all(CACHE_CONTROL).iter().collect();
                assert_eq!(values, ["no-store"], "{kind:?} grpc={grpc}");
            }
        }
        assert_eq!(rows.len(), ROWS.len(), "every row is checked");
    }

    #[test]
    fn missing_credentials_challenge_has_no_error_code() {
        let r = reject(RejectionKind::MissingCredentials, false);
        assert_eq!(r.www_authenticate().unwrap(), "ApiKey-v2 realm=\"api\"");
    }

    #[test]
    fn insufficient_scope_names_what_is_missing() {
        let missing = Scopes::new(["reports:write", "billing:read"]).unwrap();
        let r = reject(RejectionKind::InsufficientScope(missing), false);
        let challenge = r.www_authenticate().unwrap();
        let challenge = challenge.to_str().unwrap();
        assert!(
            challenge.contains("error=\"insufficient_scope\""),
            "{challenge}"
        );
        assert!(
            challenge.ends_with("scope=\"billing:read reports:write\""),
            "{challenge}"
        );
        let response: Answer = r.into_response();
        assert_eq!(response.status(), 403);
        let body: serde_json::Value =
            serde_json::from_slice(&collect(response.into_body())).unwrap();
        assert_eq!(body["scope"], "billing:read reports:write");
        assert_eq!(body["status"], 403);
    }

    #[test]
    fn problem_documents_are_valid_json_for_every_kind() {
        let kinds = [
            RejectionKind::MissingCredentials,
            RejectionKind::InvalidRequest(HeaderError::Multiple),
            RejectionKind::MalformedKey(KeyFormatError::Checksum),
            RejectionKind::InvalidKey,
            RejectionKind::Expired,
            RejectionKind::Ended,
            RejectionKind::Revoked,
            RejectionKind::StoreUnavailable,
            RejectionKind::Throttled {
                retry_after: Duration::from_secs(3),
            },
        ];
        for kind in kinds {
            let response: Answer = reject(kind.clone(), false).into_response();
            assert_eq!(response.status(), kind.status());
            assert_eq!(response.headers()[CONTENT_TYPE], "application/problem+json");
            let body: serde_json::Value =
                serde_json::from_slice(&collect(response.into_body())).unwrap();
            assert_eq!(body["detail"], kind.description());
            assert_eq!(body["status"], kind.status().as_u16());
        }
    }

    #[test]
    fn grpc_rejections_are_trailers_only() {
        let response: Answer = reject(RejectionKind::Revoked, true).into_response();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["grpc-status"], "16");
        assert_eq!(response.headers()["content-type"], "application/grpc");
        assert_eq!(
            response.headers()["grpc-message"],
            "the key has been revoked"
        );
        assert!(collect(response.into_body()).is_empty());
        let scope = RejectionKind::InsufficientScope(Scopes::new(["a"]).unwrap());
        let response: Answer = reject(scope, true).into_response();
        assert_eq!(response.headers()["grpc-status"], "7");
        let response: Answer = reject(RejectionKind::StoreUnavailable, true).into_response();
        assert_eq!(response.headers()["grpc-status"], "14");
    }

    #[test]
    fn store_unavailable_is_503_with_retry_after_and_no_challenge() {
        let response: Answer = reject(RejectionKind::StoreUnavailable, false).into_response();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()[RETRY_AFTER], RETRY_AFTER_SECS);
        assert!(!response.headers().contains_key(WWW_AUTHENTICATE));
    }

    #[test]
    fn throttled_is_429_with_its_own_retry_after_and_no_challenge() {
        let answers = Answers::new("api");
        for secs in [1, 42, 60, 61, 3600] {
            let kind = RejectionKind::Throttled {
                retry_after: Duration::from_secs(secs),
            };
            let response: Answer =
                Rejection::new(kind.clone(), false, &answers, HeaderMap::new()).into_response();
            assert_eq!(response.status(), 429);
            assert_eq!(response.headers()[RETRY_AFTER], secs.to_string().as_str());
            assert_eq!(response.headers().get_all(RETRY_AFTER).iter().count(), 1);
            assert!(!response.headers().contains_key(WWW_AUTHENTICATE));
            let body: serde_json::Value =
                serde_json::from_slice(&collect(response.into_body())).unwrap();
            assert_eq!(body["error"], "throttled");
            assert_eq!(body["status"], 429);
            assert_eq!(body["title"], "Too Many Requests");

            let grpc: Answer =
                Rejection::new(kind, true, &answers, HeaderMap::new()).into_response();
            assert_eq!(grpc.status(), 200);
            assert_eq!(grpc.headers()["grpc-status"], "8");
            assert_eq!(grpc.headers()[RETRY_AFTER], secs.to_string().as_str());
        }
    }

    #[test]
    fn a_body_type_with_no_default_gets_status_headers_and_the_document() {
        /// An inner body type that can be neither empty nor built from bytes.
        struct Streaming(#[allow(dead_code)] u8);
        let response: Response<ResponseBody<Streaming>> =
            reject(RejectionKind::InvalidKey, false).into_response();
        assert_eq!(response.status(), 401);
        assert!(
            response.headers()[WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .contains("invalid_token")
        );
        let answer: Answer = reject(RejectionKind::InvalidKey, false).into_response();
        let body: serde_json::Value = serde_json::from_slice(&collect(answer.into_body())).unwrap();
        assert_eq!(body["error"], "invalid_token");
    }

    #[test]
    #[should_panic(expected = "realm")]
    fn a_realm_with_a_quote_is_refused_at_configuration() {
        Answers::new("a\"b");
    }
}
