//! Characters that change how a text reads without showing themselves.
//!
//! Key names, actor names and scope descriptions are shown to people: in the panel, in
//! its "Revoke …?" confirmation, in logs. A bidirectional control can make
//! `billing<U+202E>txt.exe` read as `billingexe.txt`, a zero-width space can make two names look
//! the same, and a line separator can start a new line in a log viewer. So such texts
//! refuse:
//!
//! - every code point Unicode marks `Default_Ignorable_Code_Point`
//!   (DerivedCoreProperties.txt, Unicode 16): invisible by definition, this covers the
//!   zero-width characters, the bidirectional embeddings, overrides and isolates, the
//!   left-to-right and right-to-left marks, variation selectors, fillers and tags;
//! - the line and paragraph separators U+2028 and U+2029, which are not controls but
//!   break lines;
//! - the interlinear annotation characters U+FFF9–U+FFFB, which hide the text between
//!   them in renderers that honour them.
//!
//! Control characters (`char::is_control`) are refused separately, by each type's own
//! check, with their own error.

/// The ranges, inclusive, sorted, of the code points refused here.
pub(crate) const HIDDEN: &[(char, char)] = &[
    ('\u{00AD}', '\u{00AD}'),   // soft hyphen
    ('\u{034F}', '\u{034F}'),   // combining grapheme joiner
    ('\u{061C}', '\u{061C}'),   // Arabic letter mark (bidi)
    ('\u{115F}', '\u{1160}'),   // Hangul fillers
    ('\u{17B4}', '\u{17B5}'),   // Khmer inherent vowels
    ('\u{180B}', '\u{180F}'),   // Mongolian variation selectors and vowel separator
    ('\u{200B}', '\u{200F}'),   // zero-width space, non-joiner, joiner; LRM, RLM
    ('\u{2028}', '\u{2029}'),   // line and paragraph separators
    ('\u{202A}', '\u{202E}'),   // bidi embeddings and overrides
    ('\u{2060}', '\u{206F}'),   // word joiner, invisible operators, bidi isolates, …
    ('\u{3164}', '\u{3164}'),   // Hangul filler
    ('\u{FE00}', '\u{FE0F}'),   // variation selectors
    ('\u{FEFF}', '\u{FEFF}'),   // zero-width no-break space (byte order mark)
    ('\u{FFA0}', '\u{FFA0}'),   // halfwidth Hangul filler
    ('\u{FFF0}', '\u{FFFB}'),   // reserved; interlinear annotation
    ('\u{1BCA0}', '\u{1BCA3}'), // shorthand format controls
    ('\u{1D173}', '\u{1D17A}'), // musical symbol format controls
    ('\u{E0000}', '\u{E0FFF}'), // tags, variation selectors supplement
];

/// The first character of `text` that reads as nothing or moves other text, if any.
pub(crate) fn first_hidden(text: &str) -> Option<char> {
    text.chars().find(|&c| is_hidden(c))
}

fn is_hidden(c: char) -> bool {
    // Everything refused is at or above U+00AD: plain ASCII never searches the table.
    if c < '\u{00AD}' {
        return false;
    }
    HIDDEN
        .binary_search_by(|&(low, high)| {
            if high < c {
                std::cmp::Ordering::Less
            } else if low > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_and_disjoint() {
        for pair in HIDDEN.windows(2) {
            assert!(pair[0].0 <= pair[0].1 && pair[0].1 < pair[1].0, "{pair:?}");
        }
    }

    #[test]
    fn bidi_controls_zero_width_and_separators_are_found() {
        for c in [
            '\u{202E}',  // right-to-left override
            '\u{2066}',  // left-to-right isolate
            '\u{2069}',  // pop directional isolate
            '\u{200E}',  // left-to-right mark
            '\u{061C}',  // Arabic letter mark
            '\u{200B}',  // zero-width space
            '\u{200D}',  // zero-width joiner
            '\u{FEFF}',  // byte order mark
            '\u{2028}',  // line separator
            '\u{2029}',  // paragraph separator
            '\u{00AD}',  // soft hyphen
            '\u{E0041}', // tag latin capital A
            '\u{FE0F}',  // variation selector 16
            '\u{FFFA}',  // interlinear annotation separator
        ] {
            assert_eq!(
                first_hidden(&format!("a{c}b")),
                Some(c),
                "U+{:04X}",
                c as u32
            );
        }
    }

    #[test]
    fn visible_text_in_any_script_passes() {
        for text in [
            "billing-sync (prod)",
            "Überweisung — ü",
            "عربي",
            "日本語のキー",
            "emoji 🔑",
            "a b\u{00A0}c", // a no-break space is visible as a space
        ] {
            assert_eq!(first_hidden(text), None, "{text}");
        }
    }
}
