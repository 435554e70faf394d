//! Paged answers (DESIGN §13): a list route reads `limit` and `cursor` (and its own
//! filters) from the query string, answers a JSON array, and names the next page in a
//! `Link: <?…&cursor=…>; rel="next"` header (RFC 8288), relative to the request, so
//! that a client behind any mount point or proxy follows it as it is.

use axum::http::header::LINK;
use axum::http::{HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::problem::{AdminError, FieldError};
use tower_apikey::store::{PageCursor, PageLimit};

/// The most query parameters one request may carry: more is refused before any is
/// read, so a query string cannot make the router allocate without end.
const MAX_QUERY_PAIRS: usize = 32;

/// A list route's query string, decoded: each parameter at most once, and only those
/// the route knows.
#[derive(Debug)]
pub(super) struct QueryParams {
    pairs: Vec<(String, String)>,
}

impl QueryParams {
    /// Decodes `uri`'s query. Unknown, repeated or too many parameters are 422s naming
    /// them, so that a typo such as `?stat=revoked` cannot silently list everything.
    pub(super) fn parse(uri: &Uri, known: &[&str]) -> Result<Self, AdminError> {
        let query = uri.query().unwrap_or("");
        let mut pairs: Vec<(String, String)> = Vec::new();
        let mut errors = Vec::new();
        for (i, (name, value)) in form_urlencoded::parse(query.as_bytes()).enumerate() {
            if i == MAX_QUERY_PAIRS {
                return Err(AdminError::Invalid(vec![FieldError::new(
                    "query",
                    format!("at most {MAX_QUERY_PAIRS} query parameters are accepted"),
                )]));
            }
            if !known.contains(&name.as_ref()) {
                errors.push(FieldError::new(
                    name.as_ref(),
                    format!(
                        "unknown query parameter; this route takes {}",
                        known.join(", ")
                    ),
                ));
            } else if pairs.iter().any(|(seen, _)| *seen == name) {
                errors.push(FieldError::new(name.as_ref(), "give this parameter once"));
            } else {
                pairs.push((name.into_owned(), value.into_owned()));
            }
        }
        if errors.is_empty() {
            Ok(Self { pairs })
        } else {
            Err(AdminError::Invalid(errors))
        }
    }

    /// The value of `name`, if given.
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// `limit` (default 100, at most 1000) and `cursor`.
    pub(super) fn page(&self) -> Result<(PageLimit, Option<PageCursor>), AdminError> {
        let mut errors = Vec::new();
        let limit = match self.get("limit") {
            None => PageLimit::default(),
            Some(text) => match text.parse::<usize>().map(PageLimit::new) {
                Ok(Ok(limit)) => limit,
                Ok(Err(error)) => {
                    errors.push(FieldError::new("limit", error.to_string()));
                    PageLimit::default()
                }
                Err(_) => {
                    errors.push(FieldError::new(
                        "limit",
                        "the page limit must be a whole number from 1 to 1000",
                    ));
                    PageLimit::default()
                }
            },
        };
        let cursor = match self.get("cursor").map(PageCursor::parse) {
            None => None,
            Some(Ok(cursor)) => Some(cursor),
            Some(Err(error)) => {
                errors.push(FieldError::new("cursor", error.to_string()));
                None
            }
        };
        if errors.is_empty() {
            Ok((limit, cursor))
        } else {
            Err(AdminError::Invalid(errors))
        }
    }

    /// The `Link` value of the page after this one: this query with `cursor` replaced.
    fn next_link(&self, next: &PageCursor) -> HeaderValue {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (name, value) in self.pairs.iter().filter(|(name, _)| name != "cursor") {
            query.append_pair(name, value);
        }
        query.append_pair("cursor", next.as_str());
        // Form encoding leaves only visible ASCII other than `<`, `>` and `"`, so the
        // value is a valid header and the reference cannot break out of its brackets.
        HeaderValue::from_str(&format!("<?{}>; rel=\"next\"", query.finish()))
            .expect("a form-encoded query is a valid header value")
    }
}

/// The answer to a paged read: `items` as a JSON array, and the `Link` to the next
/// page when there is one.
pub(super) fn paged<T: Serialize>(
    items: Vec<T>,
    next: Option<&PageCursor>,
    query: &QueryParams,
) -> Response {
    let mut response = axum::Json(items).into_response();
    if let Some(next) = next {
        response.headers_mut().insert(LINK, query.next_link(next));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(uri: &str, known: &[&str]) -> Result<QueryParams, AdminError> {
        QueryParams::parse(&uri.parse().unwrap(), known)
    }

    fn fields(error: AdminError) -> Vec<String> {
        match error {
            AdminError::Invalid(errors) => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn the_next_link_keeps_the_filters_and_replaces_the_cursor() {
        let query = params(
            "/keys?q=billing%20sync&cursor=old&limit=2",
            &["q", "cursor", "limit"],
        )
        .unwrap();
        let next = PageCursor::from_fields(["1764000000000000", "7Fq2LxW9aZ3kPm4R"]).unwrap();
        assert_eq!(
            query.next_link(&next),
            "<?q=billing+sync&limit=2&cursor=1764000000000000.7Fq2LxW9aZ3kPm4R>; rel=\"next\""
        );
    }

    #[test]
    fn a_page_is_an_array_with_a_link_only_when_more_follow() {
        let query = params("/events?limit=1", &["limit", "cursor"]).unwrap();
        let next = PageCursor::parse("n").unwrap();
        let middle = paged(vec!["a"], Some(&next), &query);
        assert_eq!(middle.headers()[LINK], "<?limit=1&cursor=n>; rel=\"next\"");
        let last = paged(vec!["b"], None, &query);
        assert!(last.headers().get(LINK).is_none());
    }

    #[test]
    fn a_value_with_brackets_or_quotes_cannot_break_the_link() {
        let query = params("/keys?q=%3E%22%3C", &["q"]).unwrap();
        let link = query.next_link(&PageCursor::parse("c").unwrap());
        assert_eq!(link, "<?q=%3E%22%3C&cursor=c>; rel=\"next\"");
    }

    #[test]
    fn unknown_and_repeated_parameters_are_named() {
        let error = params("/keys?stat=revoked&limit=1&limit=2", &["limit", "state"]).unwrap_err();
        assert_eq!(fields(error), ["stat", "limit"]);
    }

    #[test]
    fn too_many_parameters_are_refused_before_they_are_read() {
        let uri = format!("/keys?{}", vec!["q=a"; MAX_QUERY_PAIRS + 1].join("&"));
        assert_eq!(fields(params(&uri, &["q"]).unwrap_err()), ["query"]);
    }

    #[test]
    fn limits_and_cursors_are_checked() {
        let known = &["limit", "cursor"];
        assert_eq!(
            params("/keys", known).unwrap().page().unwrap().0,
            PageLimit::default()
        );
        for bad in ["limit=1001", "limit=0", "limit=-1", "limit=ten"] {
            let error = params(&format!("/keys?{bad}"), known)
                .unwrap()
                .page()
                .unwrap_err();
            assert_eq!(fields(error), ["limit"], "{bad}");
        }
        let error = params("/keys?cursor=%3Cx%3E", known)
            .unwrap()
            .page()
            .unwrap_err();
        assert_eq!(fields(error), ["cursor"]);
    }
}
