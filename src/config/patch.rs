//! Editing the configuration text without losing what a person wrote:
//! merging a TOML fragment key by key (`toml_edit` keeps comments, blank
//! lines and key order), and hiding or restoring secrets.

use toml_edit::{DocumentMut, Item, Table};

use super::ConfigError;

/// Keys whose values never leave the board.
pub const SECRETS: [(&str, &str); 4] = [
    ("auth", "admin_token"),
    ("auth", "viewer_token"),
    ("rtsp", "password"),
    ("webrtc", "turn_server"),
];

/// Secrets in lists of tables: (section, list, keys). Each entry is told
/// from the others by its `name`.
pub const LISTED_SECRETS: [(&str, &str, &[&str]); 1] =
    [("publish", "targets", &["password", "passphrase", "key"])];

/// Whether the dotted `key` (a leaf of the typed configuration) holds a
/// secret, or a list holding some.
pub fn is_secret(key: &str) -> bool {
    SECRETS
        .iter()
        .any(|(table, name)| key == format!("{table}.{name}"))
}

/// The keys of list `key`'s entries that are secrets, if it is such a list.
pub fn listed_secrets(key: &str) -> Option<&'static [&'static str]> {
    LISTED_SECRETS
        .iter()
        .find(|(table, list, _)| key == format!("{table}.{list}"))
        .map(|(_, _, keys)| *keys)
}

/// The entries of list `table.list` in `document`, whether written as
/// `[[table.list]]` or inline.
fn entries<'a>(
    document: &'a mut DocumentMut,
    table: &str,
    list: &str,
) -> Vec<&'a mut dyn toml_edit::TableLike> {
    let Some(item) = document
        .get_mut(table)
        .and_then(|t| t.as_table_like_mut())
        .and_then(|t| t.get_mut(list))
    else {
        return Vec::new();
    };
    match item {
        Item::ArrayOfTables(tables) => tables
            .iter_mut()
            .map(|t| t as &mut dyn toml_edit::TableLike)
            .collect(),
        Item::Value(toml_edit::Value::Array(values)) => values
            .iter_mut()
            .filter_map(|v| v.as_inline_table_mut())
            .map(|t| t as &mut dyn toml_edit::TableLike)
            .collect(),
        _ => Vec::new(),
    }
}

/// Sets `value` to `text`, keeping its comments.
fn replace_keeping_decor(value: &mut toml_edit::Value, text: &str) {
    let decor = value.decor().clone();
    *value = text.into();
    *value.decor_mut() = decor;
}

/// What a redacted secret reads as; writing it back keeps the secret.
pub const REDACTED: &str = "<redacted>";

fn parse(text: &str, origin: &str) -> Result<DocumentMut, ConfigError> {
    text.parse::<DocumentMut>().map_err(|err| ConfigError {
        origin: origin.to_owned(),
        position: err.span().map(|span| super::line_column(text, span.start)),
        key: None,
        message: err.message().to_owned(),
    })
}

/// `base` with every key of `fragment` set (tables merged recursively);
/// every other line of `base`, comments included, stays as it was.
pub fn merge(base: &str, fragment: &str, origin: &str) -> Result<String, ConfigError> {
    let mut document = parse(base, "<current config>")?;
    let fragment = parse(fragment, origin)?;
    merge_tables(document.as_table_mut(), fragment.as_table());
    Ok(document.to_string())
}

fn merge_tables(target: &mut Table, source: &Table) {
    for (key, item) in source.iter() {
        match (target.get_mut(key), item) {
            (Some(Item::Table(existing)), Item::Table(incoming)) => {
                merge_tables(existing, incoming)
            }
            (Some(Item::Value(existing)), Item::Value(incoming)) => {
                // The new value takes the old one's place and its comment.
                let decor = existing.decor().clone();
                *existing = incoming.clone();
                *existing.decor_mut() = decor;
            }
            (_, Item::Table(incoming)) => {
                // A section the file did not have yet (from `hls.enabled =`
                // or `[hls]` alike) is written as its own `[hls]` at the end.
                let mut table = incoming.clone();
                table.set_dotted(false);
                table.set_implicit(false);
                table.set_position(None);
                target.insert(key, Item::Table(table));
            }
            (_, incoming) => {
                target.insert(key, incoming.clone());
            }
        }
    }
}

/// An error found in the file merged with `fragment`, pointed at where
/// the writer put the key in the fragment (line and column in what they
/// sent). A key the fragment does not hold (a rule between two keys) keeps
/// its place in the merged file, named as such.
pub fn locate_in_fragment(err: ConfigError, fragment: &str, origin: &str) -> ConfigError {
    let spot = if err.message.starts_with("unknown field") {
        super::Spot::Key
    } else {
        super::Spot::Value
    };
    let span = err
        .key
        .as_deref()
        .and_then(|key| super::span_of(fragment, key, spot));
    match span {
        Some(span) => ConfigError {
            origin: origin.to_owned(),
            position: Some(super::line_column(fragment, span.start)),
            ..err
        },
        None => ConfigError {
            origin: "the configuration with the change merged in".to_owned(),
            ..err
        },
    }
}

/// The text with every secret that has a value replaced by [`REDACTED`].
pub fn redact(text: &str) -> String {
    let Ok(mut document) = text.parse::<DocumentMut>() else {
        return text.to_owned();
    };
    for (table, key) in SECRETS {
        if let Some(Item::Value(value)) = document
            .get_mut(table)
            .and_then(|t| t.as_table_like_mut())
            .and_then(|t| t.get_mut(key))
        {
            if value.as_str().is_some_and(|s| !s.is_empty()) {
                replace_keeping_decor(value, REDACTED);
            }
        }
    }
    for (table, list, keys) in LISTED_SECRETS {
        for entry in entries(&mut document, table, list) {
            for key in keys {
                if let Some(value) = entry.get_mut(key).and_then(|i| i.as_value_mut()) {
                    if value.as_str().is_some_and(|s| !s.is_empty()) {
                        replace_keeping_decor(value, REDACTED);
                    }
                }
            }
        }
    }
    document.to_string()
}

/// `incoming` with every secret still reading [`REDACTED`] set back to the
/// value it has in `current`, so a redacted file can be edited and sent back.
pub fn restore_secrets(incoming: &str, current: &str) -> String {
    let (Ok(mut document), Ok(current)) = (
        incoming.parse::<DocumentMut>(),
        current.parse::<DocumentMut>(),
    ) else {
        return incoming.to_owned();
    };
    for (table, key) in SECRETS {
        let secret = current
            .get(table)
            .and_then(|t| t.get(key))
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned();
        if let Some(Item::Value(value)) = document
            .get_mut(table)
            .and_then(|t| t.as_table_like_mut())
            .and_then(|t| t.get_mut(key))
        {
            if value.as_str() == Some(REDACTED) {
                replace_keeping_decor(value, &secret);
            }
        }
    }
    let mut current = current;
    for (table, list, keys) in LISTED_SECRETS {
        // Each entry's secrets in the running file, by the entry's name.
        let known: Vec<(String, Vec<(&str, String)>)> = entries(&mut current, table, list)
            .into_iter()
            .map(|entry| {
                let name = entry
                    .get("name")
                    .and_then(|v| v.as_str())
                    .unwrap_or_default();
                let secrets = keys
                    .iter()
                    .map(|key| {
                        let value = entry.get(key).and_then(|v| v.as_str()).unwrap_or_default();
                        (*key, value.to_owned())
                    })
                    .collect();
                (name.to_owned(), secrets)
            })
            .collect();
        for entry in entries(&mut document, table, list) {
            let name = entry
                .get("name")
                .and_then(|v| v.as_str())
                .unwrap_or_default();
            let Some((_, secrets)) = known.iter().find(|(known, _)| known == name) else {
                continue;
            };
            for (key, secret) in secrets {
                if let Some(value) = entry.get_mut(key).and_then(|i| i.as_value_mut()) {
                    if value.as_str() == Some(REDACTED) {
                        replace_keeping_decor(value, secret);
                    }
                }
            }
        }
    }
    document.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "# edgecam\n\n[camera]\n# how wide\nwidth = 1280 # pixels\nheight = 720\n\n[encoder]\n# kbit/s\nbitrate_kbps = 2000\n";

    #[test]
    fn a_merge_changes_one_key_and_keeps_comments_and_order() {
        let merged = merge(BASE, "[encoder]\nbitrate_kbps = 3000\n", "patch").unwrap();
        assert_eq!(merged, BASE.replace("2000", "3000"));
    }

    #[test]
    fn dotted_and_new_keys_merge_too() {
        let merged = merge(BASE, "camera.fps = 25\nhls.enabled = false\n", "patch").unwrap();
        assert!(merged.starts_with("# edgecam\n\n[camera]\n# how wide\nwidth = 1280 # pixels\n"));
        assert!(merged.contains("fps = 25"), "{merged}");
        assert!(merged.contains("enabled = false"), "{merged}");
    }

    #[test]
    fn a_broken_fragment_names_its_line_and_column() {
        let err = merge(BASE, "[encoder]\nbitrate_kbps = = 3\n", "patch").unwrap_err();
        assert_eq!(err.origin, "patch");
        assert_eq!(err.position.map(|p| p.0), Some(2), "{err}");
    }

    #[test]
    fn errors_point_into_the_fragment_that_was_sent() {
        let base = "# notes\n\n[rtsp]\nport = 8554\n\n[camera]\nwidth = 640\n";
        for (fragment, position) in [
            ("camera.fps = 500\n", (1, 14)),
            ("[camera]\nfps = \"fast\"\n", (2, 7)),
            ("[camera]\nfsp = 5\n", (2, 1)),
        ] {
            let merged = merge(base, fragment, "patch").unwrap();
            let err = super::super::parse(&merged, "patch").unwrap_err();
            let err = locate_in_fragment(err, fragment, "patch");
            assert_eq!(err.origin, "patch", "{fragment}: {err}");
            assert_eq!(err.position, Some(position), "{fragment}: {err}");
        }
    }

    #[test]
    fn secrets_are_redacted_and_restored() {
        let text = "[auth]\nadmin_token = \"s3cret\" # keep\nviewer_token = \"\"\n";
        let shown = redact(text);
        assert!(
            !shown.contains("s3cret") && shown.contains("<redacted>\" # keep"),
            "{shown}"
        );
        assert!(shown.contains("viewer_token = \"\""), "{shown}");
        assert_eq!(restore_secrets(&shown, text), text);
    }

    #[test]
    fn secrets_in_lists_are_redacted_and_restored_by_name() {
        let text = "[publish]\n[[publish.targets]]\nname = \"a\"\nurl = \"rtsp://h/a\"\n\
                    password = \"pw-a\"\n\n[[publish.targets]]\nname = \"b\"\n\
                    url = \"rtmp://h/live\"\nkey = \"key-b\"\n";
        let shown = redact(text);
        assert!(
            !shown.contains("pw-a") && !shown.contains("key-b"),
            "{shown}"
        );
        assert_eq!(restore_secrets(&shown, text), text);
        // The same entries sent back in another order keep their own.
        let swapped = "[[publish.targets]]\nname = \"b\"\nkey = \"<redacted>\"\n\n\
                       [[publish.targets]]\nname = \"a\"\npassword = \"<redacted>\"\n";
        let restored = restore_secrets(swapped, text);
        assert!(
            restored.contains("name = \"b\"\nkey = \"key-b\""),
            "{restored}"
        );
        assert!(
            restored.contains("name = \"a\"\npassword = \"pw-a\""),
            "{restored}"
        );
        let inline = "publish.targets = [{ name = \"a\", password = \"pw\" }]\n";
        assert!(!redact(inline).contains("\"pw\""), "{}", redact(inline));
    }
}
