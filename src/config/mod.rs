//! Loading the configuration: TOML text → typed [`Config`] → validated.
//!
//! Every failure becomes a [`ConfigError`] naming the file, the line and
//! column, and the key path, whatever stage found it (TOML syntax, an unknown
//! key or a wrong type found by serde, or a range check).

pub mod board;
pub mod diff;
mod outputs;
pub mod overlay;
pub mod patch;
pub mod publish;
mod schema;
pub mod store;
pub mod units;
mod validate;

pub use schema::*;
pub use units::Span;
pub use validate::{validate, Invalid};

use std::fmt;
use std::path::Path;

/// The documented default configuration, compiled into the binary.
pub const DEFAULT_TOML: &str = include_str!("../../config.toml");

/// Where the built-in default claims to come from in messages.
pub const BUILTIN_ORIGIN: &str = "<built-in config.toml>";

/// A configuration that cannot be used, with enough context to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or [`BUILTIN_ORIGIN`]).
    pub origin: String,
    /// 1-based line and column of the offending text, when known.
    pub position: Option<(usize, usize)>,
    /// Dotted key path, when the error concerns one key.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.origin)?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": key `{key}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Reads and validates `path`, or the built-in default when `path` is `None`.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    match path {
        None => parse(DEFAULT_TOML, BUILTIN_ORIGIN),
        Some(path) => {
            let origin = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|err| ConfigError {
                origin: origin.clone(),
                position: None,
                key: None,
                message: format!("cannot read the file: {err}"),
            })?;
            parse(&text, &origin)
        }
    }
}

/// Parses and validates TOML text; `origin` names it in errors.
pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
    let error_at =
        |span: Option<std::ops::Range<usize>>, key: Option<String>, message: String| ConfigError {
            origin: origin.to_owned(),
            position: span.map(|span| line_column(text, span.start)),
            key,
            message,
        };

    let deserializer = toml::de::Deserializer::parse(text)
        .map_err(|err| error_at(err.span(), None, err.message().to_owned()))?;
    let config: Config = serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = err.path().to_string();
        let key = (path != ".").then_some(path);
        let inner = err.into_inner();
        error_at(inner.span(), key, inner.message().to_owned())
    })?;
    validate(&config).map_err(|invalid| {
        error_at(
            span_of(text, invalid.key, Spot::Value),
            Some(invalid.key.to_owned()),
            invalid.message,
        )
    })?;
    Ok(config)
}

/// What of a key to point at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spot {
    /// The key itself (an unknown key).
    Key,
    /// Its value (a wrong type, a value out of range).
    Value,
}

/// Finds where a dotted key, or its value, is written. `None` when the key
/// is absent (its default was out of range, which a test rules out for the
/// shipped defaults; or it is not in a fragment).
pub fn span_of(text: &str, dotted_key: &str, spot: Spot) -> Option<std::ops::Range<usize>> {
    let root = toml::de::DeTable::parse(text).ok()?;
    let mut table = root.get_ref();
    let mut parts = dotted_key.split('.').peekable();
    while let Some(part) = parts.next() {
        let (key, value) = table
            .iter()
            .find(|(key, _)| key.get_ref().as_ref() == part)?;
        if parts.peek().is_none() {
            return Some(match spot {
                Spot::Key => key.span(),
                Spot::Value => value.span(),
            });
        }
        table = value.get_ref().as_table()?;
    }
    None
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_file_equals_the_coded_defaults() {
        assert_eq!(parse(DEFAULT_TOML, BUILTIN_ORIGIN), Ok(Config::default()));
    }

    #[test]
    fn empty_file_means_defaults() {
        assert_eq!(parse("", "x.toml"), Ok(Config::default()));
    }

    #[test]
    fn syntax_error_has_position() {
        let err = parse("[camera]\nwidth = = 3\n", "x.toml").unwrap_err();
        assert_eq!(err.position.map(|p| p.0), Some(2), "{err}");
    }

    #[test]
    fn unknown_key_names_table_and_key() {
        let err = parse("[camera]\nwidht = 640\n", "x.toml").unwrap_err();
        assert_eq!(err.position, Some((2, 1)), "{err}");
        assert_eq!(err.key.as_deref(), Some("camera.widht"), "{err}");
        assert!(err.message.contains("expected one of"), "{err}");
    }

    #[test]
    fn wrong_type_names_key() {
        let err = parse("[camera]\nfps = \"fast\"\n", "x.toml").unwrap_err();
        assert_eq!(err.key.as_deref(), Some("camera.fps"), "{err}");
        assert_eq!(err.position, Some((2, 7)), "{err}");
    }

    #[test]
    fn out_of_range_points_at_value() {
        let err = parse("[rtsp]\nport = 8554\n\n[camera]\n  height = 7\n", "x.toml").unwrap_err();
        assert_eq!(err.key.as_deref(), Some("camera.height"));
        assert_eq!(err.position, Some((5, 12)), "{err}");
        assert_eq!(
            err.to_string(),
            "x.toml:5:12: key `camera.height`: 7 is out of range: must be 120–2160 pixels"
        );
    }

    #[test]
    fn dotted_and_inline_keys_are_found() {
        let err = parse("camera.fps = 500\n", "x.toml").unwrap_err();
        assert_eq!(err.position, Some((1, 14)), "{err}");
        let err = parse("encoder = { bitrate_kbps = 1 }\n", "x.toml").unwrap_err();
        assert_eq!(err.position, Some((1, 28)), "{err}");
    }
}
