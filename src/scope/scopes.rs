//! [`Scope`] and [`Scopes`]: the grammar and what grants what, as [`scope`](super) documents.

use super::{MAX_SCOPE_LEN, MAX_SCOPES};
use std::fmt;
use std::sync::Arc;

/// Why a text is not a valid scope, or a list not a valid set of scopes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScopeError {
    /// The scope is empty.
    #[error("a scope cannot be empty")]
    Empty,
    /// The scope is longer than [`MAX_SCOPE_LEN`] bytes.
    #[error("a scope is at most {MAX_SCOPE_LEN} bytes; this one has {0}")]
    TooLong(usize),
    /// The scope breaks the grammar; the message says where.
    #[error(
        "invalid scope {scope:?}: {reason}; a scope is segments of [a-z0-9._-] joined by ':', optionally ending in ':*'"
    )]
    Invalid {
        /// The offending scope, shown so that the caller can find it.
        scope: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// More than [`MAX_SCOPES`] scopes.
    #[error("at most {MAX_SCOPES} scopes are allowed; got {0}")]
    TooMany(usize),
}

/// One validated scope, such as `reports:read` or `reports:*`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope(Arc<str>);

impl Scope {
    /// Checks a scope against the grammar in the [module docs](crate::scope).
    pub fn new(scope: &str) -> Result<Self, ScopeError> {
        validate(scope)?;
        Ok(Self(Arc::from(scope)))
    }

    /// The scope text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is a wildcard (`p:*`).
    pub fn is_wildcard(&self) -> bool {
        self.0.ends_with(":*")
    }

    /// Whether holding `self` allows what `required` names.
    pub fn grants(&self, required: &Scope) -> bool {
        if self.0 == required.0 {
            return true;
        }
        // `p:*` grants strictly under `p`: the required scope must start with `p:`,
        // which keeps the `:` and so never matches `p` itself or `pq:…`.
        match self.0.strip_suffix('*') {
            Some(under) if self.is_wildcard() => {
                required.0.len() > under.len() && required.0.starts_with(under)
            }
            _ => false,
        }
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Scope {
    type Err = ScopeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

fn validate(scope: &str) -> Result<(), ScopeError> {
    if scope.is_empty() {
        return Err(ScopeError::Empty);
    }
    if scope.len() > MAX_SCOPE_LEN {
        return Err(ScopeError::TooLong(scope.len()));
    }
    let invalid = |reason| ScopeError::Invalid {
        scope: scope.to_owned(),
        reason,
    };
    let mut segments = scope.split(':').peekable();
    let mut first = true;
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        if segment == "*" {
            if !last {
                return Err(invalid("'*' may only be the last segment"));
            }
            if first {
                return Err(invalid(
                    "a bare '*' is not allowed; name what the key may do",
                ));
            }
        } else if segment.is_empty() {
            return Err(invalid("empty segment"));
        } else if !segment.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        }) {
            return Err(invalid(
                "a segment may hold only a-z, 0-9, '-', '_' and '.'",
            ));
        }
        first = false;
    }
    Ok(())
}

/// A set of scopes: what a key holds, or what a route requires (all of it).
///
/// Kept sorted and without duplicates, so equal sets compare equal.
#[derive(Clone, Default, Eq)]
pub struct Scopes(Arc<[Scope]>);

// By content, as equality is (a shared set is only a faster way to equal).
impl std::hash::Hash for Scopes {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl PartialEq for Scopes {
    fn eq(&self, other: &Self) -> bool {
        // A shared set (a refusal's missing scopes are often the requirement itself) is
        // equal without comparing its strings.
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl Scopes {
    /// Checks every scope and builds the set; duplicates collapse.
    ///
    /// ```
    /// use tower_apikey::Scopes;
    /// assert_eq!(Scopes::new(["b:x", "a:y", "b:x"])?.len(), 2);
    /// assert!(Scopes::new(["Bad"]).is_err());
    /// # Ok::<(), tower_apikey::scope::ScopeError>(())
    /// ```
    pub fn new<I>(scopes: I) -> Result<Self, ScopeError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut list = scopes
            .into_iter()
            .map(|s| Scope::new(s.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        list.sort_unstable();
        list.dedup();
        if list.len() > MAX_SCOPES {
            return Err(ScopeError::TooMany(list.len()));
        }
        Ok(Self(list.into()))
    }

    /// The empty set: grants nothing, and as a requirement asks for nothing.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Whether some scope in the set grants `required`.
    pub fn grants(&self, required: &Scope) -> bool {
        self.0.iter().any(|held| held.grants(required))
    }

    /// Whether the set grants every scope of `required`.
    pub fn grants_all(&self, required: &Scopes) -> bool {
        required.iter().all(|r| self.grants(r))
    }

    /// The scopes of `required` that this set does not grant.
    pub fn missing<'a>(&'a self, required: &'a Scopes) -> impl Iterator<Item = &'a Scope> + 'a {
        required.iter().filter(move |r| !self.grants(r))
    }

    /// The scopes of `required` that this set does not grant, as a set (for answers).
    pub(crate) fn missing_set(&self, required: &Scopes) -> Scopes {
        // The common refusal lacks every required scope (often the only one): then the
        // answer is `required` itself, shared, with nothing to allocate, and it matches
        // the answer a layer prebuilt for its requirement.
        if self.missing(required).count() == required.len() {
            return required.clone();
        }
        // `required` is sorted and deduplicated, so its subset is too.
        Scopes(self.missing(required).cloned().collect())
    }

    /// The scopes, sorted.
    pub fn iter(&self) -> std::slice::Iter<'_, Scope> {
        self.0.iter()
    }

    /// How many scopes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.iter()).finish()
    }
}

impl fmt::Display for Scopes {
    /// Space-separated, as in an OAuth `scope` parameter.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, scope) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(scope.as_str())?;
        }
        Ok(())
    }
}

impl<'a> IntoIterator for &'a Scopes {
    type Item = &'a Scope;
    type IntoIter = std::slice::Iter<'a, Scope>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl From<Scope> for Scopes {
    fn from(scope: Scope) -> Self {
        Self(Arc::new([scope]) as Arc<[Scope]>)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Scope {
        Scope::new(text).unwrap()
    }

    #[test]
    fn a_scope_grants_itself() {
        assert!(s("reports:read").grants(&s("reports:read")));
        assert!(s("reports:*").grants(&s("reports:*")));
    }

    #[test]
    fn a_wildcard_grants_what_is_under_it() {
        assert!(s("reports:*").grants(&s("reports:read")));
        assert!(s("reports:*").grants(&s("reports:read:eu")));
        assert!(s("reports:*").grants(&s("reports:x:*")));
        assert!(s("a:b:*").grants(&s("a:b:c")));
    }

    #[test]
    fn nothing_grants_upwards_or_sideways() {
        assert!(!s("reports:*").grants(&s("reports")));
        assert!(!s("reports:read").grants(&s("reports")));
        assert!(!s("reports:read").grants(&s("reports:write")));
        assert!(!s("reports:*").grants(&s("reportsx:read")));
        assert!(!s("a:b:*").grants(&s("a:c")));
        assert!(!s("reports:read").grants(&s("reports:*")));
    }

    #[test]
    fn grammar_is_enforced() {
        for bad in [
            "", "*", "Reports", "a::b", ":a", "a:", "a:*:b", "a b", "a\"b", "é", "a/b",
        ] {
            assert!(Scope::new(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["a", "a:b", "a-b_c.d:e", "a:*", "x1:y2:*"] {
            assert!(Scope::new(good).is_ok(), "{good:?} refused");
        }
        let long = "a".repeat(MAX_SCOPE_LEN + 1);
        assert_eq!(
            Scope::new(&long).unwrap_err(),
            ScopeError::TooLong(MAX_SCOPE_LEN + 1)
        );
    }

    #[test]
    fn sets_are_sorted_deduplicated_and_capped() {
        let set = Scopes::new(["b", "a", "b"]).unwrap();
        assert_eq!(set.to_string(), "a b");
        let many: Vec<String> = (0..=MAX_SCOPES).map(|i| format!("s{i}")).collect();
        assert_eq!(
            Scopes::new(&many).unwrap_err(),
            ScopeError::TooMany(MAX_SCOPES + 1)
        );
    }

    #[test]
    fn a_requirement_needs_all_of_its_scopes() {
        let held = Scopes::new(["reports:read"]).unwrap();
        let need = Scopes::new(["reports:read", "reports:write"]).unwrap();
        assert!(!held.grants_all(&need));
        let missing: Vec<_> = held.missing(&need).collect();
        assert_eq!(missing, [&s("reports:write")]);
        assert!(held.grants_all(&Scopes::empty()));
    }
}
