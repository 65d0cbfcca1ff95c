//! Text rasterised once per change: `embedded-graphics` draws it in ProFont
//! (a crisp bitmap font, 16x29 pixels a character at 24 points) into a bit
//! mask, which [`super::planes::Planes::blit`] copies into every frame
//! until the text changes.

use embedded_graphics::mono_font::MonoTextStyle;
use embedded_graphics::pixelcolor::BinaryColor;
use embedded_graphics::prelude::*;
use embedded_graphics::text::{Baseline, Text};

/// A rasterised text: one flag per pixel, row after row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mask {
    width: usize,
    height: usize,
    bits: Vec<bool>,
}

impl Mask {
    /// `text` (lines split at `\n`) in ProFont 24 point.
    pub fn of_text(text: &str) -> Self {
        let style = MonoTextStyle::new(&profont::PROFONT_24_POINT, BinaryColor::On);
        let drawn = Text::with_baseline(text, Point::zero(), style, Baseline::Top);
        let bounds = drawn.bounding_box();
        let (width, height) = (bounds.size.width as usize, bounds.size.height as usize);
        let mut mask = Self {
            width,
            height,
            bits: vec![false; width * height],
        };
        // Drawing into a Vec cannot fail.
        let _ = drawn.translate(-bounds.top_left).draw(&mut mask);
        mask
    }

    pub fn size(&self) -> Size {
        Size::new(self.width as u32, self.height as u32)
    }

    /// The rows, top to bottom.
    pub fn rows(&self) -> impl Iterator<Item = &[bool]> {
        self.bits.chunks(self.width.max(1))
    }
}

impl OriginDimensions for Mask {
    fn size(&self) -> Size {
        Mask::size(self)
    }
}

impl DrawTarget for Mask {
    type Color = BinaryColor;
    type Error = std::convert::Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Pixel<Self::Color>>,
    {
        for Pixel(point, color) in pixels {
            let (x, y) = (point.x as usize, point.y as usize);
            if point.x >= 0 && point.y >= 0 && x < self.width && y < self.height {
                self.bits[y * self.width + x] = color.is_on();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_is_as_wide_as_its_characters_and_has_ink() {
        let mask = Mask::of_text("12:34");
        assert_eq!(mask.size(), Size::new(5 * 16, 29));
        let ink = mask.rows().flatten().filter(|&&b| b).count();
        assert!(ink > 100, "{ink} pixels set");
        // A colon's dots are ink in the middle column of the third glyph,
        // and there is none between the glyphs' rows of ink.
        let column: Vec<bool> = mask.rows().map(|row| row[2 * 16 + 8]).collect();
        assert!(column.iter().any(|&b| b), "the colon has no ink");
        assert!(!column.iter().all(|&b| b), "the colon is a solid bar");
        let two_lines = Mask::of_text("a\nb");
        assert_eq!(two_lines.size().width, 16);
        assert!(two_lines.size().height >= 58);
    }
}
