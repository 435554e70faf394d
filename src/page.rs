//! Paged reads: a [`Page`] of items, at most a [`PageLimit`] of them, and the
//! [`PageCursor`] where the next page starts.
//!
//! Stores answer paged queries (key lists, events) with these types, and the admin
//! router turns a page into a JSON array and a `Link: <?cursor=…>; rel="next"` header
//! (RFC 8288, DESIGN §13). A cursor names a position in a fixed order (for example
//! "after the key created at *t* with id *i*"), never an offset, so that keys created
//! between two requests neither repeat nor vanish from the pages after them.
//!
//! ```
//! use tower_apikey::store::{Page, PageCursor, PageLimit};
//!
//! // A store's position: the sort value and the id, as fields of the cursor.
//! let items = vec![(30, "c"), (20, "b"), (10, "a")];
//! let limit = PageLimit::new(2).unwrap();
//! let page = Page::from_sorted(items, limit, |(at, id)| {
//!     PageCursor::from_fields([at.to_string().as_str(), id])
//! })
//! .unwrap();
//! assert_eq!(page.items.len(), 2);
//! let next = page.next.unwrap();
//! assert_eq!(next.fields().collect::<Vec<_>>(), ["20", "b"]);
//! ```

use std::fmt;
use std::num::NonZeroU16;

/// Items per page when the caller does not say: 100.
pub const DEFAULT_PAGE_LIMIT: usize = 100;
/// The most items one page may hold: 1000. More is refused (the admin API: 422), so
/// that one request cannot make the store read and serialise everything.
pub const MAX_PAGE_LIMIT: usize = 1000;
/// The longest cursor accepted: 256 characters. Cursors come back from clients, so
/// their length is bounded before anything parses them.
pub const MAX_CURSOR_CHARS: usize = 256;

/// Why a page request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PageError {
    /// The limit is 0 or more than [`MAX_PAGE_LIMIT`].
    #[error("the page limit must be from 1 to {MAX_PAGE_LIMIT}; got {0}")]
    Limit(usize),
    /// The cursor is not one this API hands out: empty, too long, or with characters
    /// no cursor has. Cursors are opaque: pass back the one a `Link` header gave.
    #[error(
        "the cursor is not one this API gave; follow the Link header's next page, or \
         leave cursor out to start from the first page"
    )]
    Cursor,
}

/// How many items a page holds, from 1 to [`MAX_PAGE_LIMIT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PageLimit(NonZeroU16);

impl PageLimit {
    /// `limit`, if it is from 1 to [`MAX_PAGE_LIMIT`].
    pub fn new(limit: usize) -> Result<Self, PageError> {
        u16::try_from(limit)
            .ok()
            .filter(|&n| usize::from(n) <= MAX_PAGE_LIMIT)
            .and_then(NonZeroU16::new)
            .map(Self)
            .ok_or(PageError::Limit(limit))
    }

    /// The number of items.
    pub fn get(self) -> usize {
        usize::from(self.0.get())
    }
}

impl Default for PageLimit {
    /// [`DEFAULT_PAGE_LIMIT`].
    fn default() -> Self {
        Self::new(DEFAULT_PAGE_LIMIT).expect("the default is within the bounds")
    }
}

/// Where the next page starts: an opaque, URL-safe token.
///
/// A store builds it from the fields of a position in its order
/// ([`from_fields`](Self::from_fields)) and reads them back
/// ([`fields`](Self::fields)); clients only pass it back. Its text is made of
/// `[A-Za-z0-9_-]` fields joined by `.`, at most [`MAX_CURSOR_CHARS`] long, so it goes
/// into a query string and a `Link` header as it is. It carries no secret.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PageCursor(Box<str>);

impl PageCursor {
    /// A cursor holding `fields`, in order. Each field is made of ASCII letters,
    /// digits, `_` and `-` (a key id, a number, a sort name), possibly empty.
    pub fn from_fields<'a>(fields: impl IntoIterator<Item = &'a str>) -> Result<Self, PageError> {
        let mut text = String::new();
        for (i, field) in fields.into_iter().enumerate() {
            if !field.bytes().all(is_field_byte) {
                return Err(PageError::Cursor);
            }
            if i > 0 {
                text.push('.');
            }
            text.push_str(field);
        }
        Self::parse(&text)
    }

    /// The cursor a client passed back, if it could be one this API gave. Whether it
    /// names a position the store understands is the store's question: a store that
    /// cannot read its fields answers [`PageError::Cursor`] too.
    pub fn parse(text: &str) -> Result<Self, PageError> {
        let well_formed = !text.is_empty()
            && text.len() <= MAX_CURSOR_CHARS
            && text.bytes().all(|b| b == b'.' || is_field_byte(b));
        if well_formed {
            Ok(Self(text.into()))
        } else {
            Err(PageError::Cursor)
        }
    }

    /// The fields, in the order they were given.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.0.split('.')
    }

    /// The token, as it goes into a query string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_field_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

impl fmt::Debug for PageCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PageCursor").field(&self.as_str()).finish()
    }
}

impl fmt::Display for PageCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One page of a paged read: its items, and the cursor of the next page if there is
/// one.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Page<T> {
    /// At most the requested limit of items, in the read's order.
    pub items: Vec<T>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<PageCursor>,
}

impl<T> Page<T> {
    /// A page of `items`, with `next` as the next page's start.
    pub fn new(items: Vec<T>, next: Option<PageCursor>) -> Self {
        Self { items, next }
    }

    /// The first `limit` of `sorted` (already in the read's order and past the
    /// request's cursor), and, if any item is left after them, a cursor made by
    /// `cursor_of` from the last item taken. It reads one item past the page, no more,
    /// so that the last page has no `next`.
    pub fn from_sorted<I, F>(sorted: I, limit: PageLimit, cursor_of: F) -> Result<Self, PageError>
    where
        I: IntoIterator<Item = T>,
        F: FnOnce(&T) -> Result<PageCursor, PageError>,
    {
        let mut sorted = sorted.into_iter();
        let items: Vec<T> = sorted.by_ref().take(limit.get()).collect();
        let next = match (sorted.next(), items.last()) {
            (Some(_), Some(last)) => Some(cursor_of(last)?),
            _ => None,
        };
        Ok(Self { items, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_outside_one_to_a_thousand_are_refused() {
        assert_eq!(PageLimit::new(0), Err(PageError::Limit(0)));
        assert_eq!(PageLimit::new(1001), Err(PageError::Limit(1001)));
        assert_eq!(PageLimit::new(70_000), Err(PageError::Limit(70_000)));
        assert_eq!(PageLimit::new(1000).unwrap().get(), 1000);
        assert_eq!(PageLimit::default().get(), DEFAULT_PAGE_LIMIT);
    }

    #[test]
    fn a_cursor_gives_back_its_fields_in_order() {
        let cursor = PageCursor::from_fields(["1764000000000000", "", "7Fq2LxW9aZ3kPm4R"]).unwrap();
        assert_eq!(cursor.as_str(), "1764000000000000..7Fq2LxW9aZ3kPm4R");
        let parsed = PageCursor::parse(cursor.as_str()).unwrap();
        assert_eq!(
            parsed.fields().collect::<Vec<_>>(),
            ["1764000000000000", "", "7Fq2LxW9aZ3kPm4R"]
        );
    }

    #[test]
    fn cursors_that_could_not_have_been_given_are_refused() {
        for text in ["", "a b", "a&cursor=b", "<x>", "a/b", "é"] {
            assert_eq!(PageCursor::parse(text), Err(PageError::Cursor), "{text:?}");
        }
        assert_eq!(
            PageCursor::parse(&"a".repeat(MAX_CURSOR_CHARS + 1)),
            Err(PageError::Cursor)
        );
        assert_eq!(PageCursor::from_fields(["a.b"]), Err(PageError::Cursor));
    }

    #[test]
    fn the_last_page_has_no_next_cursor() {
        let limit = PageLimit::new(2).unwrap();
        let cursor = |n: &i32| PageCursor::from_fields([n.to_string().as_str()]);
        let full = Page::from_sorted([1, 2, 3], limit, cursor).unwrap();
        assert_eq!(full.items, [1, 2]);
        assert_eq!(full.next.unwrap().as_str(), "2");
        let exact = Page::from_sorted([1, 2], limit, cursor).unwrap();
        assert_eq!(exact.next, None);
        let empty = Page::from_sorted([], limit, cursor).unwrap();
        assert!(empty.items.is_empty() && empty.next.is_none());
    }
}
