//! [`ScopeCatalogue`]: the scopes an application declares, each with what it allows.

use std::fmt;
use std::sync::Arc;

use crate::record::first_hidden;
use crate::scope::{Scope, ScopeError, Scopes};

/// The most scopes a catalogue declares.
pub const MAX_CATALOGUE_SCOPES: usize = 256;

/// The longest scope description, in characters: one line.
pub const MAX_DESCRIPTION_CHARS: usize = 200;

/// Why a catalogue was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogueError {
    /// A declared scope is invalid.
    #[error(transparent)]
    Scope(#[from] ScopeError),
    /// A scope is declared twice.
    #[error("the catalogue declares {0} twice; declare each scope once")]
    Duplicate(Scope),
    /// A description is empty, too long, not one line, or holds invisible characters.
    #[error(
        "the description of {scope} must be one line of 1 to {MAX_DESCRIPTION_CHARS} \
         visible characters without surrounding spaces: {problem}"
    )]
    Description {
        /// The scope it describes.
        scope: Scope,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// More than [`MAX_CATALOGUE_SCOPES`] scopes.
    #[error("a catalogue declares at most {MAX_CATALOGUE_SCOPES} scopes; this one has {0}")]
    TooMany(usize),
}

/// One declared scope and the line that says what it allows.
#[derive(Clone, PartialEq, Eq)]
pub struct CatalogueEntry {
    scope: Scope,
    description: Arc<str>,
}

impl CatalogueEntry {
    /// The scope.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// What the scope allows, in one line for people.
    pub fn description(&self) -> &str {
        &self.description
    }
}

impl fmt::Debug for CatalogueEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {:?}", self.scope, self.description)
    }
}

/// The scopes that exist in an application, each with a one-line description.
///
/// Given to [`KeyManagerBuilder::catalogue`](crate::KeyManagerBuilder::catalogue) (or
/// `tower_apikey_admin::AdminRouter::catalogue`), it makes create
/// refuse any scope it does not declare, exactly as written: declare `reports:*` to
/// let keys hold that wildcard. Rotation keeps a key's scopes as they are, even ones
/// that predate the catalogue. The admin router lists it at `GET /scopes`, and the
/// panel offers it as choices.
///
/// ```
/// use tower_apikey::Scopes;
/// use tower_apikey::manager::ScopeCatalogue;
///
/// let catalogue = ScopeCatalogue::new([
///     ("reports:read", "Read reports"),
///     ("reports:write", "Create reports"),
///     ("admin:keys", "Manage API keys, within the scopes one holds"),
/// ])?;
/// let asked = Scopes::new(["reports:read", "billing:read"])?;
/// assert_eq!(catalogue.undeclared(&asked).to_string(), "billing:read");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Cloning is cheap: the entries are shared.
#[derive(Clone, PartialEq, Eq)]
pub struct ScopeCatalogue(Arc<[CatalogueEntry]>);

impl ScopeCatalogue {
    /// Checks and builds a catalogue from `(scope, description)` pairs. The entries are
    /// kept sorted by scope.
    ///
    /// # Errors
    ///
    /// A [`CatalogueError`] for an invalid or repeated scope, a description that is not
    /// one line of 1 to 200 visible characters, or more than 256 scopes.
    pub fn new<I, S, D>(entries: I) -> Result<Self, CatalogueError>
    where
        I: IntoIterator<Item = (S, D)>,
        S: AsRef<str>,
        D: AsRef<str>,
    {
        let mut list = Vec::new();
        for (scope, description) in entries {
            let scope = Scope::new(scope.as_ref())?;
            let description = description.as_ref();
            if let Err(problem) = check_description(description) {
                return Err(CatalogueError::Description { scope, problem });
            }
            list.push(CatalogueEntry {
                scope,
                description: Arc::from(description),
            });
        }
        if list.len() > MAX_CATALOGUE_SCOPES {
            return Err(CatalogueError::TooMany(list.len()));
        }
        list.sort_by(|a, b| a.scope.cmp(&b.scope));
        if let Some(pair) = list.windows(2).find(|pair| pair[0].scope == pair[1].scope) {
            return Err(CatalogueError::Duplicate(pair[0].scope.clone()));
        }
        Ok(Self(list.into()))
    }

    /// The entries, sorted by scope.
    pub fn iter(&self) -> std::slice::Iter<'_, CatalogueEntry> {
        self.0.iter()
    }

    /// How many scopes it declares.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it declares none (then keys can only be created without scopes).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The entry declaring exactly `scope`, if any.
    pub fn get(&self, scope: &Scope) -> Option<&CatalogueEntry> {
        self.0
            .binary_search_by(|entry| entry.scope.cmp(scope))
            .ok()
            .map(|index| &self.0[index])
    }

    /// The scopes of `scopes` this catalogue does not declare (exactly as written).
    pub fn undeclared(&self, scopes: &Scopes) -> Scopes {
        let undeclared: Vec<&Scope> = scopes.iter().filter(|s| self.get(s).is_none()).collect();
        // A subset of a valid set is a valid set.
        Scopes::new(undeclared.iter().map(|s| s.as_str())).unwrap_or_default()
    }
}

impl fmt::Debug for ScopeCatalogue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter()).finish()
    }
}

impl<'a> IntoIterator for &'a ScopeCatalogue {
    type Item = &'a CatalogueEntry;
    type IntoIter = std::slice::Iter<'a, CatalogueEntry>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

fn check_description(text: &str) -> Result<(), &'static str> {
    if text.trim().is_empty() {
        return Err("it is empty");
    }
    if text.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err("it is too long");
    }
    if text.chars().any(char::is_control) {
        return Err("it holds a control character, such as a newline");
    }
    if first_hidden(text).is_some() {
        return Err("it holds an invisible or text-reordering character");
    }
    if text.trim() != text {
        return Err("it starts or ends with white space");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_catalogue_is_sorted_and_finds_exact_scopes() {
        let catalogue =
            ScopeCatalogue::new([("reports:write", "Write"), ("reports:*", "Everything")]).unwrap();
        let scopes: Vec<&str> = catalogue.iter().map(|e| e.scope().as_str()).collect();
        assert_eq!(scopes, ["reports:*", "reports:write"]);
        let asked = Scopes::new(["reports:read", "reports:*", "reports:write"]).unwrap();
        // The wildcard is declared, but declaring it does not declare what it grants.
        assert_eq!(catalogue.undeclared(&asked).to_string(), "reports:read");
        assert_eq!(
            catalogue
                .get(&Scope::new("reports:*").unwrap())
                .unwrap()
                .description(),
            "Everything"
        );
    }

    #[test]
    fn bad_catalogues_are_refused_with_what_to_fix() {
        assert!(matches!(
            ScopeCatalogue::new([("Reports", "x")]),
            Err(CatalogueError::Scope(_))
        ));
        assert!(matches!(
            ScopeCatalogue::new([("a:b", "x"), ("a:b", "y")]),
            Err(CatalogueError::Duplicate(_))
        ));
        for bad in ["", "two\nlines", " padded", "rtl\u{202E}", &"d".repeat(201)] {
            let error = ScopeCatalogue::new([("a:b", bad)]).unwrap_err();
            assert!(
                matches!(error, CatalogueError::Description { .. }),
                "{bad:?}"
            );
            assert!(error.to_string().contains("a:b"), "{error}");
        }
        let many: Vec<(String, &str)> = (0..=MAX_CATALOGUE_SCOPES)
            .map(|i| (format!("s{i}"), "d"))
            .collect();
        assert_eq!(
            ScopeCatalogue::new(many).unwrap_err(),
            CatalogueError::TooMany(MAX_CATALOGUE_SCOPES + 1)
        );
    }
}
