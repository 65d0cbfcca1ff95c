//! `[overlay]`: layers drawn on the picture before it is encoded (and
//! before the raw-frame and JPEG taps), as a compositor sees them: each
//! with a name, a kind, a z-order, visibility, opacity and a place anchored
//! to a corner or the centre. They change live: no rebuild, no viewer
//! dropped.

use serde::Deserialize;

use super::diff::{Effect, Effects};
use super::validate::Invalid;

/// What a layer draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerKind {
    /// The local time, formatted with `format` (strftime).
    #[default]
    Clock,
    /// `text`, with `{camera}`, `{fps}`, `{bitrate_kbps}`, `{frame_id}`,
    /// `{viewers}` and `{temp_c}` filled in from what runs.
    Text,
    /// Filled rectangles (`rects`), in picture coordinates.
    Mask,
    /// A PNG (`file`), drawn with its own transparency.
    Image,
}

/// Where a text layer sits; `margin` pixels in from that edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Anchor {
    TopLeft,
    #[default]
    TopRight,
    BottomLeft,
    BottomRight,
    Center,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LayerConfig {
    pub name: String,
    pub kind: LayerKind,
    /// Drawing order: higher is drawn later, on top.
    pub z: i32,
    pub visible: bool,
    /// 0 (invisible) – 100 (opaque), in percent.
    pub opacity: u8,
    pub anchor: Anchor,
    pub margin: u32,
    /// Clock: a strftime format.
    pub format: String,
    /// Text: the text or template.
    pub text: String,
    /// Text colour, `#rrggbb`; masks are filled with it too.
    pub color: String,
    /// The box behind text, `#rrggbb`, and its opacity in percent (0: none).
    pub background: String,
    pub background_opacity: u8,
    /// Glyph scale: 1 draws the 24-point font as it is (16x29 pixels a
    /// character), 2 doubles it; 0 picks one from the picture's height.
    pub scale: u32,
    /// Mask: `[x, y, width, height]` rectangles in pixels of `size`.
    pub rects: Vec<[u32; 4]>,
    /// Mask: the picture size `rects` are measured in; they are scaled to
    /// the picture drawn on, so a mask keeps covering the same part of the
    /// scene when the resolution changes. `[0, 0]`: the configured
    /// `camera.width` x `camera.height`.
    pub size: [u32; 2],
    /// Image: the PNG's path (read once, when the layer is set).
    pub file: String,
}

impl Default for LayerConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            kind: LayerKind::Clock,
            z: 0,
            visible: true,
            opacity: 100,
            anchor: Anchor::TopRight,
            margin: 16,
            format: "%Y-%m-%d %H:%M:%S".to_owned(),
            text: String::new(),
            color: "#ffffff".to_owned(),
            background: "#000000".to_owned(),
            background_opacity: 50,
            scale: 0,
            rects: Vec::new(),
            size: [0, 0],
            file: String::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct OverlayConfig {
    pub layers: Vec<LayerConfig>,
}

impl OverlayConfig {
    pub const EFFECTS: Effects = &[("layers", Effect::Live)];

    /// Whether anything is to be drawn.
    pub fn draws(&self) -> bool {
        self.layers
            .iter()
            .any(|layer| layer.visible && layer.opacity > 0)
    }
}

/// `#rrggbb` as its three components.
pub fn parse_color(text: &str) -> Option<[u8; 3]> {
    let hex = text.strip_prefix('#')?;
    if hex.len() != 6 || !hex.is_ascii() {
        return None;
    }
    let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
    Some([byte(0)?, byte(2)?, byte(4)?])
}

/// The layers' own rules; `picture` is the configured size. (Nothing is
/// ever drawn over the test pattern's latency stamp: the drawing clips it.)
pub fn validate(overlay: &OverlayConfig, picture: (u32, u32)) -> Result<(), Invalid> {
    let fail = |layer: &LayerConfig, message: String| {
        Err(Invalid {
            key: "overlay.layers",
            message: format!("layer {:?}: {message}", layer.name),
        })
    };
    for (index, layer) in overlay.layers.iter().enumerate() {
        if layer.name.is_empty() || layer.name.len() > 64 {
            return Err(Invalid {
                key: "overlay.layers",
                message: format!("layer {}: give it a name (1–64 characters)", index + 1),
            });
        }
        if overlay.layers[..index].iter().any(|l| l.name == layer.name) {
            return fail(layer, "two layers have this name".to_owned());
        }
        if layer.opacity > 100 || layer.background_opacity > 100 {
            return fail(layer, "opacities are percentages, 0–100".to_owned());
        }
        if layer.scale > 8 {
            return fail(layer, format!("scale {} is out of range: 0–8", layer.scale));
        }
        for (key, color) in [("color", &layer.color), ("background", &layer.background)] {
            if parse_color(color).is_none() {
                return fail(
                    layer,
                    format!("{key} {color:?} is no colour: write #rrggbb"),
                );
            }
        }
        match layer.kind {
            LayerKind::Clock => {
                let broken = chrono::format::StrftimeItems::new(&layer.format)
                    .any(|item| matches!(item, chrono::format::Item::Error));
                if broken || layer.format.is_empty() || layer.format.len() > 200 {
                    return fail(layer, format!("{:?} is no strftime format", layer.format));
                }
            }
            LayerKind::Text => {
                if layer.text.is_empty() || layer.text.len() > 200 {
                    return fail(layer, "text must be 1–200 characters".to_owned());
                }
            }
            LayerKind::Mask => {
                if layer.rects.is_empty() {
                    return fail(
                        layer,
                        "a mask needs rects = [[x, y, width, height], …]".to_owned(),
                    );
                }
                let measured = match layer.size {
                    [0, 0] => picture,
                    [w, h] if w > 0 && h > 0 => (w, h),
                    [w, h] => return fail(layer, format!("size [{w}, {h}] is not a picture size")),
                };
                for &[x, y, w, h] in &layer.rects {
                    let inside = w > 0
                        && h > 0
                        && x.checked_add(w).is_some_and(|r| r <= measured.0)
                        && y.checked_add(h).is_some_and(|b| b <= measured.1);
                    if !inside {
                        let hint = if layer.size == [0, 0] {
                            " (the camera's size; set size = [width, height] to the picture \
                             the rects were drawn on, and they are scaled to any other)"
                        } else {
                            ""
                        };
                        return fail(
                            layer,
                            format!(
                                "[{x}, {y}, {w}, {h}] is not inside the {}x{} picture{hint}",
                                measured.0, measured.1
                            ),
                        );
                    }
                }
            }
            LayerKind::Image => {
                if let Err(why) = check_png(&layer.file) {
                    return fail(layer, why);
                }
            }
        }
    }
    Ok(())
}

/// The largest image layer, each way.
pub const MAX_IMAGE_SIDE: u32 = 4096;

/// That `file` is a PNG of a drawable size (its header only: the overlay
/// reads the whole image when the layer is set).
fn check_png(file: &str) -> Result<(), String> {
    if file.is_empty() {
        return Err("an image needs file = \"/path/to/logo.png\"".to_owned());
    }
    let opened = std::fs::File::open(file).map_err(|err| format!("cannot open {file}: {err}"))?;
    let reader = png::Decoder::new(std::io::BufReader::new(opened))
        .read_info()
        .map_err(|err| format!("{file} is not a PNG: {err}"))?;
    let (width, height) = (reader.info().width, reader.info().height);
    if width > MAX_IMAGE_SIDE || height > MAX_IMAGE_SIDE {
        return Err(format!(
            "{file} is {width}x{height}, larger than {MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(kind: LayerKind) -> LayerConfig {
        LayerConfig {
            name: "a".to_owned(),
            kind,
            text: "hello".to_owned(),
            rects: vec![[100, 100, 50, 50]],
            ..LayerConfig::default()
        }
    }

    fn check(layers: Vec<LayerConfig>) -> Result<(), String> {
        validate(&OverlayConfig { layers }, (640, 360)).map_err(|e| e.message)
    }

    #[test]
    fn layers_are_checked_with_their_name_in_the_message() {
        assert_eq!(check(vec![layer(LayerKind::Clock)]), Ok(()));
        assert_eq!(check(vec![layer(LayerKind::Mask)]), Ok(()));
        let twice = check(vec![layer(LayerKind::Text), layer(LayerKind::Clock)]);
        assert!(twice.unwrap_err().contains("two layers"));
        let outside = LayerConfig {
            rects: vec![[600, 100, 50, 50]],
            ..layer(LayerKind::Mask)
        };
        assert!(check(vec![outside]).unwrap_err().contains("not inside"));
        let bad_format = LayerConfig {
            format: "%Q%".to_owned(),
            ..layer(LayerKind::Clock)
        };
        assert!(check(vec![bad_format]).unwrap_err().contains("strftime"));
        let bad_color = LayerConfig {
            color: "red".to_owned(),
            ..layer(LayerKind::Text)
        };
        assert!(check(vec![bad_color])
            .unwrap_err()
            .starts_with("layer \"a\": color"));
    }

    #[test]
    fn colours_are_hex_triplets() {
        assert_eq!(parse_color("#ff8000"), Some([255, 128, 0]));
        assert_eq!(parse_color("ff8000"), None);
        assert_eq!(parse_color("#ff80"), None);
    }
}
