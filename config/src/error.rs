//! `ConfigError`: every way loading a configuration can fail, printed as `file:line:column: message`.

use std::fmt;
use std::path::PathBuf;

/// A position in the configuration text (both 1-based; the column counts characters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    /// Line number, from 1.
    pub line: usize,
    /// Column number, from 1.
    pub column: usize,
}

impl Location {
    /// The line and column of byte `offset` in `text`.
    pub fn from_offset(text: &str, offset: usize) -> Self {
        let mut end = offset.min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let before = &text[..end];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Self { line, column }
    }
}

/// One problem found by validation: the field, what is wrong, and where it is if known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationError {
    /// Path of the field in TOML terms, e.g. `listener[2].bind` or `bridge[0].topic[1].topic`.
    pub field: String,
    /// What is wrong and what was expected.
    pub message: String,
    /// Where the field (or its closest enclosing table) is, when validated from text.
    pub location: Option<Location>,
}

/// Errors of loading or validating a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("{}: cannot read configuration file: {source}", path.display())]
    Read {
        /// The file that was opened.
        path: PathBuf,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid TOML, or does not fit the schema (unknown field, wrong type…).
    #[error("{}", Position { origin, location: *location, message })]
    Parse {
        /// File name (or other origin) of the text.
        origin: String,
        /// Where the error is, when the parser reported it.
        location: Option<Location>,
        /// What was expected, as reported by the TOML parser.
        message: String,
    },
    /// The configuration parsed but breaks rules the schema cannot express.
    #[error("{}", InvalidList { origin, errors })]
    Invalid {
        /// File name (or other origin) of the configuration.
        origin: String,
        /// Every problem found, in document order of the checks.
        errors: Vec<ValidationError>,
    },
}

/// `origin:line:column: message` (or `origin: message` without a location).
struct Position<'a> {
    origin: &'a str,
    location: Option<Location>,
    message: &'a str,
}

impl fmt::Display for Position<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location {
            Some(Location { line, column }) => {
                write!(f, "{}:{line}:{column}: {}", self.origin, self.message)
            }
            None => write!(f, "{}: {}", self.origin, self.message),
        }
    }
}

/// One `origin:line:column: field: message` line per validation error.
struct InvalidList<'a> {
    origin: &'a str,
    errors: &'a [ValidationError],
}

impl fmt::Display for InvalidList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            let message = format!("{}: {}", error.field, error.message);
            let position = Position {
                origin: self.origin,
                location: error.location,
                message: &message,
            };
            write!(f, "{position}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_lines_and_character_columns() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(
            Location::from_offset(text, 0),
            Location { line: 1, column: 1 }
        );
        assert_eq!(
            Location::from_offset(text, 6),
            Location { line: 2, column: 1 }
        );
        // `=` after the two-byte `é`: byte 10, character column 4.
        assert_eq!(
            Location::from_offset(text, 10),
            Location { line: 2, column: 4 }
        );
        assert_eq!(
            Location::from_offset(text, 999),
            Location { line: 3, column: 1 }
        );
    }
}
