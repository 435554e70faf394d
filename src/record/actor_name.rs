//! [`ActorName`]: who acted on a key, as records keep it.

use std::fmt;
use std::sync::Arc;

use super::name_text::{NameFault, check_name};
use crate::key::KeyId;

/// The longest actor name, in characters: room for any e-mail address (254).
pub const MAX_ACTOR_CHARS: usize = 256;

/// Why a text is not a valid actor name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ActorNameError {
    /// Empty, or only white space.
    #[error("an actor name cannot be empty")]
    Empty,
    /// Longer than [`MAX_ACTOR_CHARS`] characters.
    #[error("an actor name is at most {MAX_ACTOR_CHARS} characters; this one has {0}")]
    TooLong(usize),
    /// Holds a control character.
    #[error("an actor name cannot contain control characters")]
    ControlCharacter,
    /// Holds an invisible or text-reordering character, as [`KeyName`](crate::record::KeyName)
    /// refuses.
    #[error(
        "an actor name cannot contain U+{:04X}, an invisible or text-reordering character",
        u32::from(*.0)
    )]
    HiddenCharacter(char),
    /// Starts or ends with white space.
    #[error("an actor name cannot start or end with white space")]
    Untrimmed,
    /// A person's name that reads as a key id, so that records could not tell the
    /// person from the key. Only [`Actor::key`](crate::Actor::key) names an actor by a
    /// key id.
    #[error(
        "a person's name cannot be 16 letters and digits, which reads as a key id; \
         use the application's login name or e-mail address"
    )]
    LooksLikeKeyId,
}

/// Who created or revoked a key, as [`KeyRecord::created_by`](crate::KeyRecord::created_by)
/// and [`KeyRecord::revoked_by`](crate::KeyRecord::revoked_by) keep it: the acting key's
/// id, or the name the application's login gives a person (such as an e-mail address).
///
/// 1 to 256 characters, with the rules of a [`KeyName`](crate::record::KeyName): no control
/// or invisible characters, no surrounding white space. `Display` shows the text as is.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ActorName(Arc<str>);

impl ActorName {
    /// Checks and wraps a name, as a store reads it back.
    pub fn new(name: &str) -> Result<Self, ActorNameError> {
        check_name(name, MAX_ACTOR_CHARS).map_err(|fault| match fault {
            NameFault::Empty => ActorNameError::Empty,
            NameFault::TooLong(chars) => ActorNameError::TooLong(chars),
            NameFault::ControlCharacter => ActorNameError::ControlCharacter,
            NameFault::HiddenCharacter(c) => ActorNameError::HiddenCharacter(c),
            NameFault::Untrimmed => ActorNameError::Untrimmed,
        })?;
        Ok(Self(Arc::from(name)))
    }

    /// The name text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name of a key acting: its id, which is always a valid name.
    pub(crate) fn of_key(id: &KeyId) -> Self {
        Self(Arc::from(id.as_str()))
    }
}

impl fmt::Debug for ActorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for ActorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actor_names_are_checked_like_key_names() {
        assert_eq!(ActorName::new(" ").unwrap_err(), ActorNameError::Empty);
        assert_eq!(
            ActorName::new("a\tb").unwrap_err(),
            ActorNameError::ControlCharacter
        );
        assert_eq!(
            ActorName::new("alice\u{202E}moc.elpmaxe@").unwrap_err(),
            ActorNameError::HiddenCharacter('\u{202E}')
        );
        assert_eq!(
            ActorName::new("alice ").unwrap_err(),
            ActorNameError::Untrimmed
        );
        assert_eq!(
            ActorName::new(&"a".repeat(MAX_ACTOR_CHARS + 1)).unwrap_err(),
            ActorNameError::TooLong(MAX_ACTOR_CHARS + 1)
        );
        assert_eq!(
            ActorName::new("alice@example.com").unwrap().to_string(),
            "alice@example.com"
        );
    }
}
