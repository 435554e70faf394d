//! [`TenantId`]: the customer organisation a key belongs to (DESIGN §14).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// The longest tenant id, in characters.
pub const MAX_TENANT_CHARS: usize = 64;

/// Why a text is not a valid tenant id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TenantIdError {
    /// The empty text. A key of no tenant has no tenant id at all (`None`), not an empty one.
    #[error(
        "a tenant id cannot be empty; leave the tenant out for a key of the application itself"
    )]
    Empty,
    /// Longer than [`MAX_TENANT_CHARS`] characters.
    #[error("a tenant id is at most {MAX_TENANT_CHARS} characters; this one has {0}")]
    TooLong(usize),
    /// A character outside `A-Z a-z 0-9 . _ : -`.
    #[error(
        "a tenant id holds only the letters A-Z and a-z, digits and `.` `_` `:` `-`; \
         {0:?} is not one of them"
    )]
    Character(char),
}

/// The application's own id of the customer organisation (or team, or user) a key belongs
/// to: 1 to 64 characters of `A-Z a-z 0-9 . _ : -` (DESIGN §14).
///
/// A key without a tenant belongs to the application itself; single-organisation
/// applications never meet this type. The alphabet has no white space, no `/`, `?`, `%`,
/// `&` or `#`, so a tenant id goes into a URL path or query, a log line or a CSV cell as it
/// is, and two ids that look alike are alike. Ids are compared as written: `Acme` and `acme`
/// are two tenants.
///
/// A tenant id is not a secret: `Debug` and `Display` show it. Cloning is cheap.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(Arc<str>);

impl TenantId {
    /// Checks and wraps a tenant id.
    pub fn new(id: &str) -> Result<Self, TenantIdError> {
        Self::check(id)?;
        Ok(Self(Arc::from(id)))
    }

    /// Checks a tenant id without keeping it.
    fn check(id: &str) -> Result<(), TenantIdError> {
        if id.is_empty() {
            return Err(TenantIdError::Empty);
        }
        if let Some(bad) = id.chars().find(|c| !Self::allowed(*c)) {
            return Err(TenantIdError::Character(bad));
        }
        // Every allowed character is one byte, so the length in bytes is the count.
        if id.len() > MAX_TENANT_CHARS {
            return Err(TenantIdError::TooLong(id.len()));
        }
        Ok(())
    }

    fn allowed(c: char) -> bool {
        c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')
    }

    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for TenantId {
    type Err = TenantIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<&str> for TenantId {
    type Error = TenantIdError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl AsRef<str> for TenantId {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TenantId").field(&&*self.0).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_alphabet_up_to_64_characters() {
        for id in [
            "a",
            "acme",
            "Acme-Corp_2",
            "org:42",
            "eu.acme",
            &"x".repeat(64),
        ] {
            assert_eq!(TenantId::new(id).unwrap().as_str(), id);
        }
        assert_ne!(
            TenantId::new("Acme").unwrap(),
            TenantId::new("acme").unwrap()
        );
    }

    #[test]
    fn refuses_what_would_break_a_path_a_query_or_a_log_line() {
        assert_eq!(TenantId::new(""), Err(TenantIdError::Empty));
        assert_eq!(
            TenantId::new(&"x".repeat(65)),
            Err(TenantIdError::TooLong(65))
        );
        for (id, bad) in [
            ("a b", ' '),
            ("a/b", '/'),
            ("a?b", '?'),
            ("a%2F", '%'),
            ("a\nb", '\n'),
            ("é", 'é'),
            ("a\u{200B}", '\u{200B}'),
            ("a#b", '#'),
            ("a&b", '&'),
        ] {
            assert_eq!(
                TenantId::new(id),
                Err(TenantIdError::Character(bad)),
                "{id:?}"
            );
        }
        // A long text of a bad character says the character, not the length: what to fix.
        assert_eq!(
            TenantId::new(&"é".repeat(40)),
            Err(TenantIdError::Character('é'))
        );
    }

    #[test]
    fn errors_say_what_to_do() {
        let empty = TenantIdError::Empty.to_string();
        assert!(empty.contains("leave the tenant out"), "{empty}");
        let bad = TenantId::new("a b").unwrap_err().to_string();
        assert!(bad.contains("A-Z") && bad.contains("' '"), "{bad}");
    }
}
