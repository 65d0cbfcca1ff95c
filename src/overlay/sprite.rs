//! Image layers: a PNG loaded once (with its alpha) and turned into the
//! frame's colour space, ready to blend on every frame.

use std::path::Path;

use anyhow::{bail, Context, Result};
use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;

use super::planes::Yuv;

/// The largest image taken, each way: a logo, not a second picture.
pub use crate::config::overlay::MAX_IMAGE_SIDE as MAX_SIDE;

/// A picture in Y'CbCr with per-pixel alpha (0–256), row by row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sprite {
    pub size: Size,
    pub pixels: Vec<(Yuv, u16)>,
}

impl Sprite {
    /// Reads the PNG at `path`, each pixel `scale` x `scale` (0 or 1: as
    /// it is).
    pub fn load(path: &Path, scale: u32) -> Result<Self> {
        let file =
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        Self::decode(std::io::BufReader::new(file), scale)
            .with_context(|| format!("{} is not a PNG edgecam can draw", path.display()))
    }

    pub fn decode(reader: impl std::io::Read, scale: u32) -> Result<Self> {
        let mut decoder = png::Decoder::new(reader);
        // Palette and low bit depths expanded, 16 bits cut to 8.
        decoder.set_transformations(png::Transformations::normalize_to_color8());
        let mut reader = decoder.read_info()?;
        let (width, height) = (reader.info().width, reader.info().height);
        if width > MAX_SIDE || height > MAX_SIDE {
            bail!("{width}x{height} is larger than {MAX_SIDE}x{MAX_SIDE}");
        }
        let mut buffer = vec![0; reader.output_buffer_size()];
        let frame = reader.next_frame(&mut buffer)?;
        let data = &buffer[..frame.buffer_size()];
        let channels = match frame.color_type {
            png::ColorType::Grayscale => 1,
            png::ColorType::GrayscaleAlpha => 2,
            png::ColorType::Rgb => 3,
            png::ColorType::Rgba => 4,
            png::ColorType::Indexed => bail!("an indexed PNG was not expanded"),
        };
        let rgba = |i: usize| -> [u8; 4] {
            let p = &data[i * channels..(i + 1) * channels];
            match channels {
                1 => [p[0], p[0], p[0], 255],
                2 => [p[0], p[0], p[0], p[1]],
                3 => [p[0], p[1], p[2], 255],
                _ => [p[0], p[1], p[2], p[3]],
            }
        };
        let scale = scale.max(1);
        let (scaled_w, scaled_h) = (width * scale, height * scale);
        if scaled_w > MAX_SIDE || scaled_h > MAX_SIDE {
            bail!("scaled {scale}x it is larger than {MAX_SIDE}x{MAX_SIDE}");
        }
        let mut pixels = Vec::with_capacity((scaled_w * scaled_h) as usize);
        for y in 0..scaled_h {
            for x in 0..scaled_w {
                let [r, g, b, a] = rgba(((y / scale) * width + x / scale) as usize);
                let alpha = u16::from(a) + u16::from(a >> 7);
                pixels.push((Yuv::from(Rgb888::new(r, g, b)), alpha));
            }
        }
        Ok(Self {
            size: Size::new(scaled_w, scaled_h),
            pixels,
        })
    }

    /// The pixel at (x, y) of the sprite.
    pub fn at(&self, x: u32, y: u32) -> (Yuv, u16) {
        self.pixels[(y * self.size.width + x) as usize]
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A PNG of `width` x `height` RGBA pixels made by `pixel`.
    pub fn png(width: u32, height: u32, pixel: impl Fn(u32, u32) -> [u8; 4]) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut encoder = png::Encoder::new(&mut out, width, height);
            encoder.set_color(png::ColorType::Rgba);
            encoder.set_depth(png::BitDepth::Eight);
            let mut writer = encoder.write_header().unwrap();
            let mut data = Vec::new();
            for y in 0..height {
                for x in 0..width {
                    data.extend(pixel(x, y));
                }
            }
            writer.write_image_data(&data).unwrap();
        }
        out
    }

    #[test]
    fn a_png_keeps_its_alpha_and_scales_by_whole_pixels() {
        let bytes = png(2, 1, |x, _| {
            if x == 0 {
                [255, 0, 0, 255]
            } else {
                [0, 0, 0, 0]
            }
        });
        let sprite = Sprite::decode(&bytes[..], 2).unwrap();
        assert_eq!(sprite.size, Size::new(4, 2));
        let red = Yuv::from(Rgb888::new(255, 0, 0));
        assert_eq!(sprite.at(1, 1), (red, 256));
        assert_eq!(sprite.at(2, 0).1, 0);
    }

    #[test]
    fn not_a_png_is_an_error() {
        assert!(Sprite::decode(&b"GIF89a"[..], 1).is_err());
    }
}
