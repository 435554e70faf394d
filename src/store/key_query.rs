//! [`KeyQuery`]: one page of keys, filtered, searched and sorted (DESIGN §13).
//!
//! The admin API's `GET /keys` and the panel read keys through it, one bounded page at
//! a time. A store answers it with [`KeyStoreAdmin::list_page`](crate::KeyStoreAdmin::list_page): the default works over
//! [`KeyStoreAdmin::list`](crate::KeyStoreAdmin::list) (with [`KeyQuery::page_from`]), so every store has it;
//! [`InMemoryKeyStore`](crate::InMemoryKeyStore) and `PgKeyStore` answer it without
//! reading everything.
//!
//! ```
//! use std::time::SystemTime;
//! use tower_apikey::store::{KeyFilter, KeyQuery, KeySort, PageLimit};
//!
//! let query = KeyQuery::new(SystemTime::now())
//!     .with_state(KeyFilter::Dormant)
//!     .with_search("billing")?
//!     .with_sort("-last_used".parse()?)
//!     .with_limit(PageLimit::new(50)?);
//! assert_eq!(query.sort(), KeySort::parse("-last_used")?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Order and cursors
//!
//! Pages follow one total order: the sort value, then the key id. Descending sorts
//! break ties by ascending id and ascending sorts by descending id, so that every order
//! is the exact reverse of its opposite (and PostgreSQL reads both from one index). A
//! key that was never used has no `last_used_at` and counts as used before every key
//! that was: last in `-last_used`, first in `last_used`.
//!
//! A cursor ([`KeyQuery::cursor_of`]) names the last key of a page by its position in
//! that order (its sort, its sort value in microseconds and its id), never by an
//! offset, so keys created or used between two requests neither repeat nor vanish from
//! the pages after it. A cursor made for one sort is refused by a query with another
//! ([`KeyQueryError::CursorForAnotherSort`]) rather than misread.
//!
//! # States and clocks
//!
//! A state filter ([`KeyFilter`]) is judged at the query's [`now`](KeyQuery::now): the
//! application's clock, which [`KeyManager::list_page`](crate::KeyManager::list_page)
//! sets from its own, never the database's `now()`. So two instances whose clocks agree
//! give the same answer, whatever clock the database has.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::key::KeyId;
use crate::page::{Page, PageCursor, PageError, PageLimit};
use crate::record::{KeyRecord, KeyState, TenantId};
use crate::scope::Scope;
use crate::time::{epoch_micros, whole_micros};

/// The longest search text (`q`), in characters: longer is refused, so that one request
/// cannot make the store compare every key against an unbounded pattern.
pub const MAX_SEARCH_CHARS: usize = 128;

/// The largest time a cursor names, in microseconds from the Unix epoch either way:
/// the end of year 9999, beyond any key's life and within what every store holds.
const MAX_CURSOR_MICROS: u64 = 253_402_300_799_999_999;

/// How close to its end an active key is `expiring`: 30 days.
pub const EXPIRING_WITHIN: Duration = Duration::from_secs(30 * 86_400);

/// How long an active key that was used must have gone unused to be `dormant`: 30 days.
pub const DORMANT_AFTER_UNUSED: Duration = Duration::from_secs(30 * 86_400);

/// How old an active key that was never used must be to be `dormant`: 7 days.
pub const DORMANT_AFTER_NEVER_USED: Duration = Duration::from_secs(7 * 86_400);

/// Why a query could not be built from what a caller gave.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyQueryError {
    /// Not one of the state names.
    #[error(
        "unknown state {0:?}; use one of active, expiring, expired, revoked, dormant, \
         or leave it out for every key"
    )]
    State(String),
    /// Not one of the sort names.
    #[error(
        "unknown sort {0:?}; use created, last_used or expires, with a leading - for \
         descending (the default is -created)"
    )]
    Sort(String),
    /// The search text is longer than [`MAX_SEARCH_CHARS`].
    #[error("the search text is at most {MAX_SEARCH_CHARS} characters; this one has {0}")]
    SearchTooLong(usize),
    /// The cursor is not one a key query gave.
    #[error(transparent)]
    Cursor(#[from] PageError),
    /// The cursor was made for another sort: following it would skip or repeat keys.
    #[error(
        "this cursor continues a list sorted by {made_for}, not {asked}; keep the sort \
         of the page that gave it, or leave cursor out to start from the first page"
    )]
    CursorForAnotherSort {
        /// The sort the cursor was made for.
        made_for: KeySort,
        /// The sort of the query.
        asked: KeySort,
    },
}

/// Which keys a query keeps, by where they stand at the query's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyFilter {
    /// Accepted now ([`KeyState::Active`]).
    Active,
    /// Active, and stops working ([`KeyRecord::stops_at`]) within [`EXPIRING_WITHIN`].
    Expiring,
    /// Not revoked, and past its end: expired, or ended by a rotation.
    Expired,
    /// Revoked, whatever time the revocation records.
    Revoked,
    /// Active, and unused: last used more than [`DORMANT_AFTER_UNUSED`] ago, or never
    /// used and created more than [`DORMANT_AFTER_NEVER_USED`] ago.
    Dormant,
}

impl KeyFilter {
    /// Every filter, in the order the panel offers them.
    pub const ALL: [Self; 5] = [
        Self::Active,
        Self::Expiring,
        Self::Expired,
        Self::Revoked,
        Self::Dormant,
    ];

    /// The name the admin API uses: `active`, `expiring`, `expired`, `revoked`,
    /// `dormant`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Expiring => "expiring",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
            Self::Dormant => "dormant",
        }
    }

    /// Whether `record` is in this state at `now`.
    pub fn matches(self, record: &KeyRecord, now: SystemTime) -> bool {
        let state = record.state_at(now);
        match self {
            Self::Active => state == KeyState::Active,
            Self::Expiring => {
                state == KeyState::Active && record.stops_at() <= later(now, EXPIRING_WITHIN)
            }
            Self::Expired => matches!(state, KeyState::Expired | KeyState::Ended),
            Self::Revoked => state == KeyState::Revoked,
            Self::Dormant => {
                state == KeyState::Active
                    && match record.last_used_at() {
                        Some(used) => used < earlier(now, DORMANT_AFTER_UNUSED),
                        None => record.created_at() < earlier(now, DORMANT_AFTER_NEVER_USED),
                    }
            }
        }
    }
}

impl FromStr for KeyFilter {
    type Err = KeyQueryError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|f| f.as_str() == text)
            .ok_or_else(|| KeyQueryError::State(text.to_owned()))
    }
}

impl fmt::Display for KeyFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a list is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeySortField {
    /// `created_at`.
    Created,
    /// `last_used_at`; a key never used counts as used before every key that was.
    LastUsed,
    /// `expires_at`, the lifetime the key was created with (a rotation's `ends_at` is
    /// not it; filter with [`KeyFilter::Expiring`] for keys about to stop).
    Expires,
}

impl KeySortField {
    fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::LastUsed => "last_used",
            Self::Expires => "expires",
        }
    }

    /// The field's value in `record`, in whole microseconds since the Unix epoch (the
    /// precision cursors and PostgreSQL keep).
    pub fn value(self, record: &KeyRecord) -> Option<i64> {
        match self {
            Self::Created => Some(epoch_micros(record.created_at())),
            Self::LastUsed => record.last_used_at().map(epoch_micros),
            Self::Expires => Some(epoch_micros(record.expires_at())),
        }
    }
}

/// A list's order: a field, ascending or descending. The default is `-created`, newest
/// first. Written as the admin API's `sort` parameter: `created`, `last_used`,
/// `expires`, each with a leading `-` for descending.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeySort {
    field: KeySortField,
    descending: bool,
}

impl KeySort {
    /// Newest first: `-created`, the default.
    pub const NEWEST_FIRST: Self = Self::new(KeySortField::Created, true);

    /// `field`, descending if `descending`.
    pub const fn new(field: KeySortField, descending: bool) -> Self {
        Self { field, descending }
    }

    /// Reads `created`, `-created`, `last_used`, `-last_used`, `expires`, `-expires`.
    pub fn parse(text: &str) -> Result<Self, KeyQueryError> {
        text.parse()
    }

    /// The field.
    pub fn field(self) -> KeySortField {
        self.field
    }

    /// Whether the largest values come first.
    pub fn is_descending(self) -> bool {
        self.descending
    }

    /// As the `sort` parameter writes it.
    pub fn as_str(self) -> &'static str {
        match (self.field, self.descending) {
            (KeySortField::Created, true) => "-created",
            (KeySortField::Created, false) => "created",
            (KeySortField::LastUsed, true) => "-last_used",
            (KeySortField::LastUsed, false) => "last_used",
            (KeySortField::Expires, true) => "-expires",
            (KeySortField::Expires, false) => "expires",
        }
    }

    /// Where a key at `(value, id)` comes relative to one at `(other_value, other_id)`.
    fn cmp_positions(
        self,
        (value, id): (Option<i64>, &KeyId),
        (other_value, other_id): (Option<i64>, &KeyId),
    ) -> Ordering {
        // The descending order: larger values first, no value last, ties by id. The
        // ascending order is its exact reverse.
        let descending = match (value, other_value) {
            (Some(a), Some(b)) => b.cmp(&a),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        }
        .then_with(|| id.cmp(other_id));
        if self.descending {
            descending
        } else {
            descending.reverse()
        }
    }
}

impl Default for KeySort {
    fn default() -> Self {
        Self::NEWEST_FIRST
    }
}

impl FromStr for KeySort {
    type Err = KeyQueryError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (descending, name) = match text.strip_prefix('-') {
            Some(name) => (true, name),
            None => (false, text),
        };
        let field = [
            KeySortField::Created,
            KeySortField::LastUsed,
            KeySortField::Expires,
        ]
        .into_iter()
        .find(|f| f.as_str() == name)
        .ok_or_else(|| KeyQueryError::Sort(text.to_owned()))?;
        Ok(Self::new(field, descending))
    }
}

impl fmt::Debug for KeySort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for KeySort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a page starts: just after the key at this position in the query's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyPosition {
    value: Option<i64>,
    id: KeyId,
}

impl KeyPosition {
    /// The last key's sort value, in whole microseconds since the Unix epoch; `None`
    /// for a `last_used_at` that is not set.
    pub fn value(&self) -> Option<i64> {
        self.value
    }

    /// The last key's id.
    pub fn id(&self) -> &KeyId {
        &self.id
    }
}

/// The search text, as given and lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Search {
    text: Box<str>,
    lower: Box<str>,
    /// Whether the text could be part of a key id (at most 16 base62 characters):
    /// otherwise ids are not searched at all.
    could_be_id: bool,
}

impl Search {
    /// Whether `haystack` contains the text, ignoring case.
    fn found_in(&self, haystack: &str) -> bool {
        if self.lower.is_ascii() {
            // The common case, without allocating: an ASCII needle matches only ASCII
            // bytes, so a byte window compares as characters would.
            let needle = self.lower.as_bytes();
            haystack
                .as_bytes()
                .windows(needle.len())
                .any(|w| w.eq_ignore_ascii_case(needle))
        } else {
            haystack.to_lowercase().contains(&*self.lower)
        }
    }
}

/// One page of keys: which (state, search text, scope), in what order, how many, and
/// from where.
///
/// Built with [`KeyQuery::new`] and the `with_…` methods; answered by
/// [`KeyStoreAdmin::list_page`](crate::KeyStoreAdmin::list_page).
///
/// ```
/// use std::time::SystemTime;
/// use tower_apikey::store::{KeyFilter, KeyQuery, KeySort, PageLimit};
///
/// let query = KeyQuery::new(SystemTime::now())
///     .with_state(KeyFilter::Dormant)
///     .with_search("billing")?
///     .with_sort("-last_used".parse()?)
///     .with_limit(PageLimit::new(50)?);
/// assert_eq!(query.sort(), KeySort::parse("-last_used")?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Order and cursors
///
/// Pages follow one total order: the sort value, then the key id (in byte order).
/// Descending sorts break ties by ascending id and ascending sorts by descending id, so
/// that every order is the exact reverse of its opposite. A key never used has no
/// `last_used_at` and counts as used before every key that was: last in `-last_used`,
/// first in `last_used`. A cursor ([`cursor_of`](Self::cursor_of)) names the last key
/// of a page by its position in that order (sort, value in microseconds, id), never an
/// offset, so keys created or used between two requests neither repeat nor hide keys
/// on the next page. A cursor made for another sort is refused
/// ([`KeyQueryError::CursorForAnotherSort`]) rather than misread.
///
/// # States and clocks
///
/// A state filter is judged at [`now`](Self::now): the application's clock, which
/// [`KeyManager::list_page`](crate::KeyManager::list_page) sets from its own, never a
/// database's `now()`, so instances whose clocks agree give the same answer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyQuery {
    now: SystemTime,
    limit: PageLimit,
    sort: KeySort,
    after: Option<(KeySort, KeyPosition)>,
    state: Option<KeyFilter>,
    search: Option<Search>,
    scope: Option<Scope>,
    tenant: Option<TenantId>,
}

impl KeyQuery {
    /// The first page of every key, newest first, [`PageLimit::default`] of them, with
    /// states judged at `now` (whole microseconds of it).
    pub fn new(now: SystemTime) -> Self {
        Self {
            now: whole_micros(now),
            limit: PageLimit::default(),
            sort: KeySort::default(),
            after: None,
            state: None,
            search: None,
            scope: None,
            tenant: None,
        }
    }

    /// Judges states at `now` instead.
    pub fn at(mut self, now: SystemTime) -> Self {
        self.now = whole_micros(now);
        self
    }

    /// At most `limit` keys.
    pub fn with_limit(mut self, limit: PageLimit) -> Self {
        self.limit = limit;
        self
    }

    /// Sorts by `sort`. A position set by [`after`](Self::after) for another sort is
    /// dropped (set the sort first): it would not name a place in this order.
    pub fn with_sort(mut self, sort: KeySort) -> Self {
        self.sort = sort;
        if self.after.is_some_and(|(made_for, _)| made_for != sort) {
            self.after = None;
        }
        self
    }

    /// Only keys in `state` at the query's time.
    pub fn with_state(mut self, state: KeyFilter) -> Self {
        self.state = Some(state);
        self
    }

    /// Only keys whose name or id contains `text`, ignoring case. An empty text keeps
    /// every key.
    ///
    /// # Errors
    ///
    /// [`KeyQueryError::SearchTooLong`] beyond [`MAX_SEARCH_CHARS`] characters.
    pub fn with_search(mut self, text: &str) -> Result<Self, KeyQueryError> {
        let chars = text.chars().count();
        if chars > MAX_SEARCH_CHARS {
            return Err(KeyQueryError::SearchTooLong(chars));
        }
        self.search = (!text.is_empty()).then(|| Search {
            text: text.into(),
            lower: text.to_lowercase().into(),
            could_be_id: text.len() <= 16 && text.bytes().all(|b| b.is_ascii_alphanumeric()),
        });
        Ok(self)
    }

    /// Only keys whose scopes grant `scope` (wildcards count: a key holding
    /// `reports:*` grants `reports:read`).
    pub fn with_scope(mut self, scope: Scope) -> Self {
        self.scope = Some(scope);
        self
    }

    /// Only `tenant`'s keys (DESIGN §14). A manager acting for a tenant's actor sets
    /// this from the actor, whatever the query asked; a cursor never carries it.
    pub fn with_tenant(mut self, tenant: TenantId) -> Self {
        self.tenant = Some(tenant);
        self
    }

    /// Starts just after the last key of the page whose [`Page::next`] is `cursor`.
    /// Set the sort first.
    ///
    /// # Errors
    ///
    /// [`KeyQueryError::CursorForAnotherSort`] if the cursor was made for another sort,
    /// [`KeyQueryError::Cursor`] if it is not one a key query gave.
    pub fn after(mut self, cursor: &PageCursor) -> Result<Self, KeyQueryError> {
        let mut fields = cursor.fields();
        let (Some(sort), Some(value), Some(id), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(PageError::Cursor.into());
        };
        let made_for = KeySort::parse(sort).map_err(|_| PageError::Cursor)?;
        if made_for != self.sort {
            return Err(KeyQueryError::CursorForAnotherSort {
                made_for,
                asked: self.sort,
            });
        }
        let value = match value {
            "" if made_for.field == KeySortField::LastUsed => None,
            text => Some(
                text.parse::<i64>()
                    .ok()
                    .filter(|v| v.unsigned_abs() <= MAX_CURSOR_MICROS)
                    .ok_or(PageError::Cursor)?,
            ),
        };
        let id = KeyId::new(id).map_err(|_| PageError::Cursor)?;
        self.after = Some((made_for, KeyPosition { value, id }));
        Ok(self)
    }

    /// When states are judged.
    pub fn now(&self) -> SystemTime {
        self.now
    }

    /// How many keys a page holds at most.
    pub fn limit(&self) -> PageLimit {
        self.limit
    }

    /// The order.
    pub fn sort(&self) -> KeySort {
        self.sort
    }

    /// Where the page starts: after this key. `None` for the first page.
    pub fn position(&self) -> Option<&KeyPosition> {
        self.after.as_ref().map(|(_, position)| position)
    }

    /// The state filter, if any.
    pub fn state(&self) -> Option<KeyFilter> {
        self.state
    }

    /// The search text as given, if any.
    pub fn search(&self) -> Option<&str> {
        self.search.as_ref().map(|s| &*s.text)
    }

    /// The scope filter, if any.
    pub fn scope(&self) -> Option<&Scope> {
        self.scope.as_ref()
    }

    /// The tenant filter, if any: a store answers only keys of this tenant.
    pub fn tenant(&self) -> Option<&TenantId> {
        self.tenant.as_ref()
    }

    /// The scopes any of which grants the scope filter: the scope itself and each
    /// wildcard above it (`a:b:c` ← `a:b:*`, `a:*`). A store that can only match held
    /// scopes exactly (an array index) matches keys holding any of these.
    pub fn scope_grantors(&self) -> Option<Vec<String>> {
        let scope = self.scope.as_ref()?.as_str();
        // For a wildcard `p:*`, its own `:` before `*` adds only itself again.
        let mut grantors = vec![scope.to_owned()];
        for (at, _) in scope.match_indices(':') {
            let wildcard = format!("{}:*", &scope[..at]);
            if wildcard != scope {
                grantors.push(wildcard);
            }
        }
        Some(grantors)
    }

    /// Whether `record` passes the filters (tenant, state, search, scope), wherever it
    /// is in the order.
    pub fn matches(&self, record: &KeyRecord) -> bool {
        self.tenant
            .as_ref()
            .is_none_or(|t| record.tenant() == Some(t))
            && self.state.is_none_or(|s| s.matches(record, self.now))
            && self
                .scope
                .as_ref()
                .is_none_or(|s| record.scopes().grants(s))
            && self.search.as_ref().is_none_or(|s| {
                s.found_in(record.name().as_str())
                    || (s.could_be_id && s.found_in(record.id().as_str()))
            })
    }

    /// Whether `record` comes after the query's position (always, on the first page).
    pub fn is_after_position(&self, record: &KeyRecord) -> bool {
        self.position().is_none_or(|p| {
            self.sort.cmp_positions(self.key(record), (p.value, &p.id)) == Ordering::Greater
        })
    }

    /// Where `a` comes relative to `b` in the query's order.
    pub fn compare(&self, a: &KeyRecord, b: &KeyRecord) -> Ordering {
        self.sort.cmp_positions(self.key(a), self.key(b))
    }

    /// The cursor of the page that starts after `record`.
    pub fn cursor_of(&self, record: &KeyRecord) -> PageCursor {
        let value = self
            .sort
            .field
            .value(record)
            .map(|v| v.to_string())
            .unwrap_or_default();
        // A sort name, an integer and a base62 id: always valid fields, well within
        // the cursor's length limit.
        PageCursor::from_fields([self.sort.as_str(), &value, record.id().as_str()])
            .expect("a key cursor is made of valid fields")
    }

    /// The page of `records` this query asks for: those that match and come after the
    /// position, in order, at most the limit, with the next page's cursor if more
    /// follow. For stores that read their records into memory: one pass over
    /// `records`, keeping only the best `limit + 1` on the way (a bounded heap), so
    /// that a million records cost a million cheap comparisons and no copy.
    pub fn page_from<R: Borrow<KeyRecord>>(&self, records: impl IntoIterator<Item = R>) -> Page<R> {
        let keep = self.limit.get() + 1;
        let mut best: BinaryHeap<Ranked<R>> = BinaryHeap::with_capacity(keep);
        for record in records {
            let r = record.borrow();
            let key = (self.sort.field.value(r), *r.id());
            if let Some(p) = self.position()
                && self.sort.cmp_positions(as_position(&key), (p.value, &p.id)) != Ordering::Greater
            {
                continue;
            }
            // Cheap before the filters: a record after the worst kept one cannot be on
            // the page.
            if best.len() == keep
                && best.peek().is_some_and(|worst| {
                    self.sort
                        .cmp_positions(as_position(&key), as_position(&worst.key))
                        != Ordering::Less
                })
            {
                continue;
            }
            if !self.matches(r) {
                continue;
            }
            if best.len() == keep {
                best.pop();
            }
            best.push(Ranked {
                key,
                sort: self.sort,
                record,
            });
        }
        let mut items: Vec<R> = best
            .into_sorted_vec()
            .into_iter()
            .map(|r| r.record)
            .collect();
        let has_more = items.len() > self.limit.get();
        items.truncate(self.limit.get());
        let next = has_more
            .then(|| items.last().map(|r| self.cursor_of(r.borrow())))
            .flatten();
        Page::new(items, next)
    }

    fn key<'r>(&self, record: &'r KeyRecord) -> (Option<i64>, &'r KeyId) {
        (self.sort.field.value(record), record.id())
    }
}

fn as_position(key: &(Option<i64>, KeyId)) -> (Option<i64>, &KeyId) {
    (key.0, &key.1)
}

/// A record on its way to a page, ordered by the query's sort (the heap's top is the
/// one that comes last).
struct Ranked<R> {
    key: (Option<i64>, KeyId),
    sort: KeySort,
    record: R,
}

impl<R> Ord for Ranked<R> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.sort
            .cmp_positions((self.key.0, &self.key.1), (other.key.0, &other.key.1))
    }
}

impl<R> PartialOrd for Ranked<R> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<R> PartialEq for Ranked<R> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl<R> Eq for Ranked<R> {}

fn later(now: SystemTime, by: Duration) -> SystemTime {
    now.checked_add(by).unwrap_or(now)
}

fn earlier(now: SystemTime, by: Duration) -> SystemTime {
    now.checked_sub(by).unwrap_or(UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::KeyDigest;
    use crate::record::KeyName;
    use crate::scope::Scopes;

    const DAY: Duration = Duration::from_secs(86_400);

    fn t0() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    fn record(id: &str, name: &str, scopes: &[&str], created: SystemTime) -> KeyRecord {
        KeyRecord::new(
            KeyId::new(id).unwrap(),
            KeyName::new(name).unwrap(),
            Scopes::new(scopes).unwrap(),
            KeyDigest::DUMMY,
            created,
            created + 365 * DAY,
        )
    }

    #[test]
    fn sorts_and_states_parse_from_their_names_only() {
        for name in [
            "created",
            "-created",
            "last_used",
            "-last_used",
            "expires",
            "-expires",
        ] {
            assert_eq!(KeySort::parse(name).unwrap().as_str(), name);
        }
        for bad in ["", "-", "--created", "name", "Created", "created "] {
            assert_eq!(
                KeySort::parse(bad),
                Err(KeyQueryError::Sort(bad.into())),
                "{bad:?}"
            );
        }
        for state in KeyFilter::ALL {
            assert_eq!(state.as_str().parse::<KeyFilter>().unwrap(), state);
        }
        assert!("Active".parse::<KeyFilter>().is_err());
        assert_eq!(KeySort::default(), KeySort::parse("-created").unwrap());
    }

    #[test]
    fn a_search_longer_than_128_characters_is_refused() {
        let query = KeyQuery::new(t0());
        assert!(query.clone().with_search(&"é".repeat(128)).is_ok());
        assert_eq!(
            query.with_search(&"é".repeat(129)).unwrap_err(),
            KeyQueryError::SearchTooLong(129)
        );
    }

    #[test]
    fn search_ignores_case_in_names_and_ids() {
        let r = record("7Fq2LxW9aZ3kPm4R", "Billing Sync", &[], t0());
        let q = |text: &str| KeyQuery::new(t0()).with_search(text).unwrap();
        assert!(q("billing s").matches(&r));
        assert!(q("LXW9").matches(&r));
        assert!(q("").matches(&r));
        assert!(!q("billing-sync").matches(&r));
        let accented = record("0000000000000000", "Überweisung", &[], t0());
        assert!(q("üBER").matches(&accented));
    }

    #[test]
    fn the_scope_filter_counts_wildcards_and_its_grantors_agree() {
        let query = KeyQuery::new(t0()).with_scope(Scope::new("reports:read:eu").unwrap());
        assert_eq!(
            query.scope_grantors().unwrap(),
            ["reports:read:eu", "reports:*", "reports:read:*"]
        );
        for (held, grants) in [
            (&["reports:read:eu"][..], true),
            (&["reports:*"], true),
            (&["reports:read:*"], true),
            (&["reports:read"], false),
            (&["billing:*"], false),
        ] {
            let r = record("0000000000000000", "n", held, t0());
            assert_eq!(query.matches(&r), grants, "{held:?}");
            let grantors = query.scope_grantors().unwrap();
            let by_grantors = r
                .scopes()
                .iter()
                .any(|s| grantors.iter().any(|g| g == s.as_str()));
            assert_eq!(by_grantors, grants, "grantors for {held:?}");
        }
        let wildcard = KeyQuery::new(t0()).with_scope(Scope::new("a:b:*").unwrap());
        assert_eq!(wildcard.scope_grantors().unwrap(), ["a:b:*", "a:*"]);
    }

    #[test]
    fn states_follow_the_design_definitions() {
        let now = t0() + 100 * DAY;
        let fresh = record("0000000000000001", "fresh", &[], now - DAY);
        let old_unused = record("0000000000000002", "old", &[], now - 8 * DAY);
        let used_long_ago = record("0000000000000003", "u", &[], now - 90 * DAY)
            .with_last_used_at(Some(now - 31 * DAY));
        let used_lately = record("0000000000000004", "l", &[], now - 90 * DAY)
            .with_last_used_at(Some(now - 29 * DAY));
        let ending =
            record("0000000000000005", "e", &[], now - 10 * DAY).with_ends_at(Some(now + 10 * DAY));
        let ended =
            record("0000000000000006", "x", &[], now - 10 * DAY).with_ends_at(Some(now - DAY));
        let expired = record("0000000000000007", "y", &[], now - 400 * DAY);
        let revoked = record("0000000000000008", "r", &[], now - DAY).with_revoked_at(Some(now));
        let all = [
            &fresh,
            &old_unused,
            &used_long_ago,
            &used_lately,
            &ending,
            &ended,
            &expired,
            &revoked,
        ];
        let ids = |filter: KeyFilter| -> Vec<&str> {
            all.iter()
                .filter(|r| filter.matches(r, now))
                .map(|r| r.name().as_str())
                .collect()
        };
        assert_eq!(ids(KeyFilter::Active), ["fresh", "old", "u", "l", "e"]);
        assert_eq!(ids(KeyFilter::Expiring), ["e"]);
        assert_eq!(ids(KeyFilter::Expired), ["x", "y"]);
        assert_eq!(ids(KeyFilter::Revoked), ["r"]);
        assert_eq!(ids(KeyFilter::Dormant), ["old", "u", "e"]);
    }

    #[test]
    fn a_cursor_is_refused_by_a_query_with_another_sort() {
        let r = record("7Fq2LxW9aZ3kPm4R", "n", &[], t0());
        let newest = KeyQuery::new(t0());
        let cursor = newest.cursor_of(&r);
        assert!(newest.clone().after(&cursor).is_ok());
        let by_use = KeyQuery::new(t0()).with_sort(KeySort::parse("-last_used").unwrap());
        assert_eq!(
            by_use.after(&cursor).unwrap_err(),
            KeyQueryError::CursorForAnotherSort {
                made_for: KeySort::NEWEST_FIRST,
                asked: KeySort::parse("-last_used").unwrap(),
            }
        );
        for bad in [
            "x",
            "-created.1",
            "-created.a.7Fq2LxW9aZ3kPm4R",
            "-created..7Fq2LxW9aZ3kPm4R",
        ] {
            let cursor = PageCursor::parse(bad).unwrap();
            assert_eq!(
                newest.clone().after(&cursor).unwrap_err(),
                KeyQueryError::Cursor(PageError::Cursor),
                "{bad}"
            );
        }
    }

    #[test]
    fn never_used_keys_come_last_when_descending_and_first_when_ascending() {
        let used = record("0000000000000001", "used", &[], t0()).with_last_used_at(Some(t0()));
        let never = record("0000000000000002", "never", &[], t0());
        let desc = KeyQuery::new(t0()).with_sort(KeySort::parse("-last_used").unwrap());
        let page = desc.page_from([never.clone(), used.clone()]);
        assert_eq!(page.items[0].name().as_str(), "used");
        let asc = KeyQuery::new(t0()).with_sort(KeySort::parse("last_used").unwrap());
        let page = asc.page_from([used, never]);
        assert_eq!(page.items[0].name().as_str(), "never");
    }

    #[test]
    fn paging_through_records_visits_each_once_in_order() {
        let records: Vec<KeyRecord> = (0..25)
            .map(|i| {
                let id = format!("{i:016}");
                // Pairs share a creation time, so ties are broken by id.
                record(&id, "n", &[], t0() + Duration::from_secs(i / 2))
                    .with_last_used_at((i % 3 != 0).then(|| t0() + Duration::from_secs(i % 5)))
            })
            .collect();
        for sort in ["-created", "created", "-last_used", "last_used", "expires"] {
            let sort = KeySort::parse(sort).unwrap();
            let base = KeyQuery::new(t0())
                .with_sort(sort)
                .with_limit(PageLimit::new(4).unwrap());
            let mut expected = records.clone();
            expected.sort_by(|a, b| base.compare(a, b));
            let mut seen = Vec::new();
            let mut query = base.clone();
            loop {
                let page = query.page_from(records.iter().cloned());
                seen.extend(page.items.iter().map(|r| *r.id()));
                match page.next {
                    Some(next) => query = base.clone().after(&next).unwrap(),
                    None => break,
                }
            }
            let expected: Vec<KeyId> = expected.iter().map(|r| *r.id()).collect();
            assert_eq!(seen, expected, "{sort}");
        }
    }

    #[test]
    fn microseconds_round_towards_the_past() {
        assert_eq!(epoch_micros(UNIX_EPOCH + Duration::from_nanos(1_999)), 1);
        assert_eq!(epoch_micros(UNIX_EPOCH - Duration::from_nanos(1)), -1);
        assert_eq!(epoch_micros(UNIX_EPOCH - Duration::from_micros(2)), -2);
    }
}
