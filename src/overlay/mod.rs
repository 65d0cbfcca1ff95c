//! The overlay stage: `[overlay]` layers drawn on each raw frame before it
//! is encoded, through a buffer probe at the camera pipeline's picture tee
//! (so RTSP, WebRTC, HLS, MJPEG, snapshots and frames all show them). No
//! layer: the probe returns at once, nothing is drawn or copied. Layers
//! change live ([`Overlay::set_layers`]); texts are rasterised once per
//! change ([`glyphs`]), images read once when set ([`sprite`]), and both
//! copied into each frame ([`planes`]).

pub mod glyphs;
pub mod planes;
pub mod sprite;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::Rectangle;
use gst::prelude::*;
use gst_video::prelude::*;

use crate::config::overlay::parse_color;
use crate::config::{Anchor, LayerConfig, LayerKind, OverlayConfig};
use glyphs::Mask;
use planes::{Chroma, Plane, Planes};

/// What text templates can show, refreshed by the app from the metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Values {
    pub camera: String,
    pub fps: f64,
    pub bitrate_kbps: f64,
    pub viewers: u64,
    pub temp_c: Option<f64>,
}

/// The layers and what they need, shared by every camera pipeline.
#[derive(Clone, Default)]
pub struct Overlay {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Visible layers, in drawing order.
    layers: RwLock<Arc<Vec<LayerConfig>>>,
    /// Set while there is anything to draw (read for every frame).
    active: AtomicBool,
    values: RwLock<Values>,
    /// Each text layer's last text and its raster.
    rasters: Mutex<HashMap<String, (String, Arc<Mask>)>>,
    /// Each image layer's picture.
    sprites: RwLock<Arc<HashMap<String, sprite::Sprite>>>,
}

impl Overlay {
    /// Draws `config`'s layers from the next frame on. Image layers read
    /// their files now; one that cannot be read is an error naming it, and
    /// nothing changes.
    pub fn set_layers(&self, config: &OverlayConfig) -> Result<(), String> {
        let mut layers: Vec<LayerConfig> = config
            .layers
            .iter()
            .filter(|layer| layer.visible && layer.opacity > 0)
            .cloned()
            .collect();
        layers.sort_by_key(|layer| layer.z);
        let mut sprites = HashMap::new();
        for layer in layers.iter().filter(|l| l.kind == LayerKind::Image) {
            let sprite = sprite::Sprite::load(std::path::Path::new(&layer.file), layer.scale)
                .map_err(|err| format!("overlay layer {:?}: {err:#}", layer.name))?;
            sprites.insert(layer.name.clone(), sprite);
        }
        if let Ok(mut current) = self.inner.sprites.write() {
            *current = Arc::new(sprites);
        }
        self.inner
            .active
            .store(!layers.is_empty(), Ordering::Relaxed);
        if let Ok(mut current) = self.inner.layers.write() {
            *current = Arc::new(layers);
        }
        if let Ok(mut rasters) = self.inner.rasters.lock() {
            rasters.clear();
        }
        Ok(())
    }

    /// At start: as [`Self::set_layers`], but an image that cannot be read
    /// (the file went, or the service may not read it) is left out, said
    /// in the log, and the other layers are drawn.
    pub fn set_layers_or_skip(&self, config: &OverlayConfig) {
        if let Err(err) = self.set_layers(config) {
            tracing::error!("{err}; drawing the other layers");
            let mut readable = config.clone();
            readable.layers.retain(|layer| {
                layer.kind != LayerKind::Image
                    || sprite::Sprite::load(std::path::Path::new(&layer.file), layer.scale).is_ok()
            });
            let _ = self.set_layers(&readable);
        }
    }

    pub fn set_values(&self, values: Values) {
        if let Ok(mut current) = self.inner.values.write() {
            *current = values;
        }
    }

    /// Draws on every raw frame that passes `pad`, never inside `keep_out`
    /// (the test pattern's latency stamp, so latency stays measurable).
    pub fn attach(&self, pad: &gst::Pad, keep_out: Option<Rectangle>) {
        let overlay = self.clone();
        let format: Mutex<Option<(gst::Caps, gst_video::VideoInfo)>> = Mutex::new(None);
        pad.add_probe(gst::PadProbeType::BUFFER, move |pad, probe| {
            if !overlay.inner.active.load(Ordering::Relaxed) {
                return gst::PadProbeReturn::Ok;
            }
            let Some(caps) = pad.current_caps() else {
                return gst::PadProbeReturn::Ok;
            };
            let Ok(mut format) = format.lock() else {
                return gst::PadProbeReturn::Ok;
            };
            if format.as_ref().is_none_or(|(known, _)| *known != caps) {
                *format = gst_video::VideoInfo::from_caps(&caps)
                    .ok()
                    .map(|info| (caps, info));
            }
            let (Some((_, info)), Some(buffer)) = (format.as_ref(), probe.buffer_mut()) else {
                return gst::PadProbeReturn::Ok;
            };
            overlay.draw(buffer.make_mut(), info, keep_out);
            gst::PadProbeReturn::Ok
        });
    }

    fn draw(
        &self,
        buffer: &mut gst::BufferRef,
        info: &gst_video::VideoInfo,
        keep_out: Option<Rectangle>,
    ) {
        let chroma = match info.format() {
            gst_video::VideoFormat::I420 => Chroma::Planar,
            gst_video::VideoFormat::Nv12 => Chroma::Interleaved,
            _ => return,
        };
        let layers = match self.inner.layers.read() {
            Ok(layers) => layers.clone(),
            Err(_) => return,
        };
        let frame_id = crate::source::identity::frame_id(buffer);
        let Ok(mut frame) = gst_video::VideoFrameRef::from_buffer_ref_writable(buffer, info) else {
            return;
        };
        let size = Size::new(frame.width(), frame.height());
        // Read before the planes are borrowed for writing.
        let mut strides = [0usize; 4];
        for (stride, &given) in strides.iter_mut().zip(frame.plane_stride()) {
            *stride = given.max(0) as usize;
        }
        let [luma, first, second, _] = frame.planes_data_mut();
        let stride = |plane: usize| strides[plane];
        let mut planes = Planes::new(
            size,
            chroma,
            Plane {
                data: luma,
                stride: stride(0),
            },
            Plane {
                data: first,
                stride: stride(1),
            },
            Plane {
                data: second,
                stride: stride(2),
            },
        );
        planes.set_keep_out(keep_out);
        let sprites = match self.inner.sprites.read() {
            Ok(sprites) => sprites.clone(),
            Err(_) => return,
        };
        for layer in layers.iter() {
            self.draw_layer(&mut planes, layer, frame_id, &sprites);
        }
    }

    fn draw_layer(
        &self,
        planes: &mut Planes<'_>,
        layer: &LayerConfig,
        frame_id: Option<u64>,
        sprites: &HashMap<String, sprite::Sprite>,
    ) {
        let color = rgb(&layer.color);
        let picture = planes.size();
        planes.set_opacity(layer.opacity);
        match layer.kind {
            LayerKind::Mask => {
                for &rect in &layer.rects {
                    let _ = planes.fill_solid(&scaled(rect, layer.size, picture), color);
                }
                return;
            }
            LayerKind::Image => {
                if let Some(sprite) = sprites.get(&layer.name) {
                    let origin = place(layer.anchor, layer.margin, sprite.size, picture);
                    planes.blend_sprite(sprite, origin);
                }
                return;
            }
            LayerKind::Clock | LayerKind::Text => {}
        }
        let text = match layer.kind {
            LayerKind::Clock => chrono::Local::now().format(&layer.format).to_string(),
            _ => self.fill_in(&layer.text, frame_id),
        };
        let Some(mask) = self.raster(&layer.name, text) else {
            return;
        };
        let scale = match layer.scale {
            0 if picture.height > 720 => 2,
            0 => 1,
            scale => scale,
        };
        let pad = 4 * scale;
        let boxed = mask.size() * scale + Size::new(2 * pad, 2 * pad);
        let origin = place(layer.anchor, layer.margin, boxed, picture);
        if layer.background_opacity > 0 {
            planes.set_opacity(layer.background_opacity);
            let _ = planes.fill_solid(&Rectangle::new(origin, boxed), rgb(&layer.background));
        }
        planes.set_opacity(layer.opacity);
        planes.blit(
            &mask,
            origin + Point::new(pad as i32, pad as i32),
            scale,
            color,
        );
    }

    /// The raster of `text` for layer `name`: made again only when the text
    /// changed since the last frame.
    fn raster(&self, name: &str, text: String) -> Option<Arc<Mask>> {
        let mut rasters = self.inner.rasters.lock().ok()?;
        match rasters.get(name) {
            Some((known, mask)) if *known == text => Some(mask.clone()),
            _ => {
                let mask = Arc::new(Mask::of_text(&text));
                rasters.insert(name.to_owned(), (text, mask.clone()));
                Some(mask)
            }
        }
    }

    /// `template` with its `{name}`s filled in.
    fn fill_in(&self, template: &str, frame_id: Option<u64>) -> String {
        let values = self
            .inner
            .values
            .read()
            .map(|v| v.clone())
            .unwrap_or_default();
        let temp = values
            .temp_c
            .map_or_else(|| "-".to_owned(), |t| format!("{t:.0}"));
        template
            .replace("{camera}", &values.camera)
            .replace("{fps}", &format!("{:.0}", values.fps))
            .replace("{bitrate_kbps}", &format!("{:.0}", values.bitrate_kbps))
            .replace(
                "{frame_id}",
                &frame_id.map_or_else(|| "-".to_owned(), |id| id.to_string()),
            )
            .replace("{viewers}", &values.viewers.to_string())
            .replace("{temp_c}", &temp)
    }
}

/// A mask's `[x, y, w, h]` measured in `size` ([0, 0]: the picture's own)
/// as pixels of `picture`, rounded outwards: a mask never uncovers an edge.
fn scaled([x, y, w, h]: [u32; 4], size: [u32; 2], picture: Size) -> Rectangle {
    let [from_w, from_h] = match size {
        [0, _] | [_, 0] => [picture.width, picture.height],
        size => size,
    };
    let down = |v: u32, from: u32, to: u32| (u64::from(v) * u64::from(to) / u64::from(from)) as i32;
    let up = |v: u32, from: u32, to: u32| {
        (u64::from(v) * u64::from(to)).div_ceil(u64::from(from)) as i32
    };
    let (left, top) = (
        down(x, from_w, picture.width),
        down(y, from_h, picture.height),
    );
    let right = up(x + w, from_w, picture.width);
    let bottom = up(y + h, from_h, picture.height);
    Rectangle::new(
        Point::new(left, top),
        Size::new((right - left).max(0) as u32, (bottom - top).max(0) as u32),
    )
}

fn rgb(text: &str) -> Rgb888 {
    let [r, g, b] = parse_color(text).unwrap_or([255, 255, 255]);
    Rgb888::new(r, g, b)
}

/// The top-left corner of a `size` box anchored in `picture`.
fn place(anchor: Anchor, margin: u32, size: Size, picture: Size) -> Point {
    let margin = margin as i32;
    let (w, h) = (size.width as i32, size.height as i32);
    let (pw, ph) = (picture.width as i32, picture.height as i32);
    match anchor {
        Anchor::TopLeft => Point::new(margin, margin),
        Anchor::TopRight => Point::new(pw - w - margin, margin),
        Anchor::BottomLeft => Point::new(margin, ph - h - margin),
        Anchor::BottomRight => Point::new(pw - w - margin, ph - h - margin),
        Anchor::Center => Point::new((pw - w) / 2, (ph - h) / 2),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_place_a_box_inside_the_margin() {
        let picture = Size::new(640, 360);
        let size = Size::new(100, 40);
        assert_eq!(
            place(Anchor::TopLeft, 16, size, picture),
            Point::new(16, 16)
        );
        assert_eq!(
            place(Anchor::TopRight, 16, size, picture),
            Point::new(524, 16)
        );
        assert_eq!(
            place(Anchor::BottomRight, 0, size, picture),
            Point::new(540, 320)
        );
        assert_eq!(
            place(Anchor::Center, 16, size, picture),
            Point::new(270, 160)
        );
    }

    #[test]
    fn masks_follow_the_picture_size_rounding_outwards() {
        let hd = Size::new(1280, 720);
        let rect = [101, 51, 99, 49];
        // Measured in the picture drawn on: as it is.
        assert_eq!(
            scaled(rect, [0, 0], hd),
            Rectangle::new(Point::new(101, 51), Size::new(99, 49))
        );
        // Drawn at 1280x720, shown at 640x360: half, never smaller.
        assert_eq!(
            scaled(rect, [1280, 720], Size::new(640, 360)),
            Rectangle::new(Point::new(50, 25), Size::new(50, 25))
        );
        // And at 1920x1080: one and a half.
        assert_eq!(
            scaled([100, 50, 100, 50], [1280, 720], Size::new(1920, 1080)),
            Rectangle::new(Point::new(150, 75), Size::new(150, 75))
        );
    }

    #[test]
    fn an_image_that_cannot_be_read_is_refused_naming_its_layer() {
        let overlay = Overlay::default();
        let layer = LayerConfig {
            name: "logo".to_owned(),
            kind: LayerKind::Image,
            file: "/nonexistent/logo.png".to_owned(),
            ..LayerConfig::default()
        };
        let err = overlay
            .set_layers(&OverlayConfig {
                layers: vec![layer],
            })
            .unwrap_err();
        assert!(
            err.contains("\"logo\"") && err.contains("cannot open"),
            "{err}"
        );
    }

    #[test]
    fn templates_take_the_live_values() {
        let overlay = Overlay::default();
        overlay.set_values(Values {
            camera: "door".to_owned(),
            fps: 29.97,
            bitrate_kbps: 1999.6,
            viewers: 3,
            temp_c: None,
        });
        assert_eq!(
            overlay.fill_in(
                "{camera} {fps} fps {bitrate_kbps} kbit/s #{frame_id} {viewers} {temp_c}",
                Some(7)
            ),
            "door 30 fps 2000 kbit/s #7 3 -"
        );
    }

    #[test]
    fn a_text_is_rasterised_again_only_when_it_changes() {
        let overlay = Overlay::default();
        let first = overlay.raster("t", "a".to_owned()).unwrap();
        let again = overlay.raster("t", "a".to_owned()).unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        let other = overlay.raster("t", "b".to_owned()).unwrap();
        assert!(!Arc::ptr_eq(&first, &other));
    }
}
