//! The rules a key name and an actor name share: not blank, not too long, no control
//! character, nothing invisible or text-reordering, no surrounding white space. Checked
//! once here; each name maps a fault to its own error type.

use super::hidden_text::first_hidden;

/// What is wrong with a name's text, in the order the rules are checked.
pub(super) enum NameFault {
    /// Empty, or only white space.
    Empty,
    /// Longer than the limit; the length in characters.
    TooLong(usize),
    /// Holds a control character.
    ControlCharacter,
    /// Holds an invisible or text-reordering character.
    HiddenCharacter(char),
    /// Starts or ends with white space.
    Untrimmed,
}

/// Checks `name` against the shared rules, with at most `max_chars` characters.
pub(super) fn check_name(name: &str, max_chars: usize) -> Result<(), NameFault> {
    if name.trim().is_empty() {
        return Err(NameFault::Empty);
    }
    let chars = name.chars().count();
    if chars > max_chars {
        return Err(NameFault::TooLong(chars));
    }
    if name.chars().any(char::is_control) {
        return Err(NameFault::ControlCharacter);
    }
    if let Some(hidden) = first_hidden(name) {
        return Err(NameFault::HiddenCharacter(hidden));
    }
    if name.trim() != name {
        return Err(NameFault::Untrimmed);
    }
    Ok(())
}
