//! An `embedded-graphics` `DrawTarget` over a video frame's planes, I420 or
//! NV12: colours become Y'CbCr once per call, rectangles are filled row by
//! row (not pixel by pixel), and every write is blended with the layer's
//! opacity. Chroma is shared by 2x2 pixels, so it is written for the pixel
//! at the even corner of each block.

use embedded_graphics::pixelcolor::{BinaryColor, Rgb888};
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::Rectangle;

/// A colour as the frame stores it (BT.601, limited range).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Yuv {
    pub y: u8,
    pub u: u8,
    pub v: u8,
}

impl From<Rgb888> for Yuv {
    fn from(color: Rgb888) -> Self {
        let (r, g, b) = (
            i32::from(color.r()),
            i32::from(color.g()),
            i32::from(color.b()),
        );
        let clamp = |value: i32| value.clamp(0, 255) as u8;
        Self {
            y: clamp(((66 * r + 129 * g + 25 * b + 128) >> 8) + 16),
            u: clamp(((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128),
            v: clamp(((112 * r - 94 * g - 18 * b + 128) >> 8) + 128),
        }
    }
}

/// How the two chroma components are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chroma {
    /// I420: a U plane, then a V plane.
    Planar,
    /// NV12: one plane of U, V pairs.
    Interleaved,
}

/// One plane: its bytes and its row length in bytes.
pub struct Plane<'a> {
    pub data: &'a mut [u8],
    pub stride: usize,
}

/// A frame to draw on.
pub struct Planes<'a> {
    size: Size,
    luma: Plane<'a>,
    /// U (I420) or the interleaved U, V pairs (NV12).
    first: Plane<'a>,
    /// V (I420); unused for NV12.
    second: Plane<'a>,
    chroma: Chroma,
    /// Opacity of what is drawn now, 0–256.
    alpha: u32,
    /// Nothing is drawn inside it (the test pattern's latency stamp).
    keep_out: Option<Rectangle>,
}

fn blend(old: u8, new: u8, alpha: u32) -> u8 {
    if alpha >= 256 {
        return new;
    }
    ((u32::from(old) * (256 - alpha) + u32::from(new) * alpha) >> 8) as u8
}

impl<'a> Planes<'a> {
    pub fn new(
        size: Size,
        chroma: Chroma,
        luma: Plane<'a>,
        first: Plane<'a>,
        second: Plane<'a>,
    ) -> Self {
        Self {
            size,
            luma,
            first,
            second,
            chroma,
            alpha: 256,
            keep_out: None,
        }
    }

    /// Opacity in percent for what is drawn from now on.
    pub fn set_opacity(&mut self, percent: u8) {
        self.alpha = u32::from(percent.min(100)) * 256 / 100;
    }

    pub fn set_keep_out(&mut self, area: Option<Rectangle>) {
        self.keep_out = area;
    }

    /// The part of `area` that may be drawn on.
    fn drawable(&self, area: &Rectangle) -> Option<Rectangle> {
        let area = area.intersection(&self.bounding_box());
        if area.is_zero_sized() {
            return None;
        }
        Some(area)
    }

    fn kept_out(&self, point: Point) -> bool {
        self.keep_out.is_some_and(|area| area.contains(point))
    }

    /// Writes one row of `width` pixels from (x, y) in `color`.
    fn fill_row(&mut self, x: usize, y: usize, width: usize, color: Yuv) {
        let alpha = self.alpha;
        let start = y * self.luma.stride + x;
        if let Some(row) = self.luma.data.get_mut(start..start + width) {
            for pixel in row {
                *pixel = blend(*pixel, color.y, alpha);
            }
        }
        if !y.is_multiple_of(2) {
            return;
        }
        // The 2x2 blocks whose even corner lies in the row.
        let (first_x, last_x) = (x.div_ceil(2), (x + width).div_ceil(2));
        let row = y / 2;
        match self.chroma {
            Chroma::Planar => {
                for (plane, value) in [(&mut self.first, color.u), (&mut self.second, color.v)] {
                    let start = row * plane.stride;
                    if let Some(row) = plane.data.get_mut(start + first_x..start + last_x) {
                        for sample in row {
                            *sample = blend(*sample, value, alpha);
                        }
                    }
                }
            }
            Chroma::Interleaved => {
                let start = row * self.first.stride;
                let pairs = self
                    .first
                    .data
                    .get_mut(start + first_x * 2..start + last_x * 2);
                if let Some(pairs) = pairs {
                    for pair in pairs.chunks_exact_mut(2) {
                        pair[0] = blend(pair[0], color.u, alpha);
                        pair[1] = blend(pair[1], color.v, alpha);
                    }
                }
            }
        }
    }

    /// Draws the set bits of `mask` (a rasterised text, see `glyphs`) at
    /// `origin`, each mask pixel `scale` x `scale` frame pixels.
    pub fn blit(&mut self, mask: &super::glyphs::Mask, origin: Point, scale: u32, color: Rgb888) {
        let color = Yuv::from(color);
        let scale = scale.max(1) as i32;
        for (row, bits) in mask.rows().enumerate() {
            // Runs of set bits become row fills.
            let mut column = 0;
            while column < bits.len() {
                if !bits[column] {
                    column += 1;
                    continue;
                }
                let run = bits[column..].iter().take_while(|&&b| b).count();
                let area = Rectangle::new(
                    origin + Point::new(column as i32 * scale, row as i32 * scale),
                    Size::new(run as u32 * scale as u32, scale as u32),
                );
                self.fill_area(&area, color);
                column += run;
            }
        }
    }

    fn fill_area(&mut self, area: &Rectangle, color: Yuv) {
        let Some(area) = self.drawable(area) else {
            return;
        };
        let x = area.top_left.x as usize;
        let width = area.size.width as usize;
        let end = x + width;
        for y in area.rows() {
            match self.keep_out {
                Some(keep) if keep.rows().contains(&y) => {
                    // Only the parts left and right of the kept-out area.
                    let left = keep.top_left.x.max(0) as usize;
                    let right = (keep.top_left.x + keep.size.width as i32).max(0) as usize;
                    if x < left {
                        self.fill_row(x, y as usize, end.min(left) - x, color);
                    }
                    if end > right {
                        let from = x.max(right);
                        self.fill_row(from, y as usize, end - from, color);
                    }
                }
                _ => self.fill_row(x, y as usize, width, color),
            }
        }
    }
}

impl Planes<'_> {
    /// Blends `sprite` (an image layer) with `origin` at its top left: each
    /// pixel with its own alpha times the layer's opacity. Chroma comes from
    /// the sprite pixel at each 2x2 block's even corner.
    pub fn blend_sprite(&mut self, sprite: &super::sprite::Sprite, origin: Point) {
        let Some(area) = self.drawable(&Rectangle::new(origin, sprite.size)) else {
            return;
        };
        let opacity = self.alpha;
        for y in area.rows() {
            for x in area.columns() {
                if self.kept_out(Point::new(x, y)) {
                    continue;
                }
                let (color, alpha) = sprite.at((x - origin.x) as u32, (y - origin.y) as u32);
                let alpha = (u32::from(alpha) * opacity) >> 8;
                if alpha == 0 {
                    continue;
                }
                self.blend_pixel(x as usize, y as usize, color, alpha);
            }
        }
    }

    /// One pixel, and its block's chroma when it is the block's even corner.
    fn blend_pixel(&mut self, x: usize, y: usize, color: Yuv, alpha: u32) {
        if let Some(pixel) = self.luma.data.get_mut(y * self.luma.stride + x) {
            *pixel = blend(*pixel, color.y, alpha);
        }
        if !(x.is_multiple_of(2) && y.is_multiple_of(2)) {
            return;
        }
        let (column, row) = (x / 2, y / 2);
        match self.chroma {
            Chroma::Planar => {
                for (plane, value) in [(&mut self.first, color.u), (&mut self.second, color.v)] {
                    if let Some(sample) = plane.data.get_mut(row * plane.stride + column) {
                        *sample = blend(*sample, value, alpha);
                    }
                }
            }
            Chroma::Interleaved => {
                let at = row * self.first.stride + column * 2;
                if let Some(pair) = self.first.data.get_mut(at..at + 2) {
                    pair[0] = blend(pair[0], color.u, alpha);
                    pair[1] = blend(pair[1], color.v, alpha);
                }
            }
        }
    }
}

impl OriginDimensions for Planes<'_> {
    fn size(&self) -> Size {
        self.size
    }
}

impl DrawTarget for Planes<'_> {
    type Color = Rgb888;
    type Error = std::convert::Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Pixel<Self::Color>>,
    {
        let bounds = self.bounding_box();
        for Pixel(point, color) in pixels {
            if bounds.contains(point) && !self.kept_out(point) {
                self.fill_row(point.x as usize, point.y as usize, 1, color.into());
            }
        }
        Ok(())
    }

    fn fill_solid(&mut self, area: &Rectangle, color: Self::Color) -> Result<(), Self::Error> {
        self.fill_area(area, color.into());
        Ok(())
    }

    fn fill_contiguous<I>(&mut self, area: &Rectangle, colors: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Self::Color>,
    {
        // Row by row, converting each colour once per run of equal ones.
        let mut colors = colors.into_iter();
        for y in area.rows() {
            let mut x = area.top_left.x;
            let end = area.top_left.x + area.size.width as i32;
            let mut run: Option<(i32, Rgb888, u32)> = None;
            while x < end {
                let Some(color) = colors.next() else {
                    return Ok(());
                };
                match &mut run {
                    Some((_, same, length)) if *same == color => *length += 1,
                    _ => {
                        if let Some((from, color, length)) = run.take() {
                            let row = Rectangle::new(Point::new(from, y), Size::new(length, 1));
                            self.fill_area(&row, color.into());
                        }
                        run = Some((x, color, 1));
                    }
                }
                x += 1;
            }
            if let Some((from, color, length)) = run {
                let row = Rectangle::new(Point::new(from, y), Size::new(length, 1));
                self.fill_area(&row, color.into());
            }
        }
        Ok(())
    }
}

/// For drawing a mask with embedded-graphics' own primitives too.
impl From<BinaryColor> for Yuv {
    fn from(color: BinaryColor) -> Self {
        Rgb888::from(color).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_graphics::primitives::PrimitiveStyle;

    /// A grey 8x4 I420 frame: its three planes.
    fn frame() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        (vec![100; 8 * 4], vec![128; 4 * 2], vec![128; 4 * 2])
    }

    /// [`frame`]'s planes to draw on.
    fn i420<'a>(y: &'a mut [u8], u: &'a mut [u8], v: &'a mut [u8]) -> Planes<'a> {
        let plane = |data, stride| Plane { data, stride };
        Planes::new(
            Size::new(8, 4),
            Chroma::Planar,
            plane(y, 8),
            plane(u, 4),
            plane(v, 4),
        )
    }

    #[test]
    fn a_rectangle_lands_on_its_pixels_and_their_chroma() {
        let (mut y, mut u, mut v) = frame();
        let mut planes = i420(&mut y, &mut u, &mut v);
        Rectangle::new(Point::new(2, 0), Size::new(4, 2))
            .into_styled(PrimitiveStyle::with_fill(Rgb888::new(255, 0, 0)))
            .draw(&mut planes)
            .unwrap();
        let red = Yuv::from(Rgb888::new(255, 0, 0));
        assert_eq!(
            red,
            Yuv {
                y: 82,
                u: 90,
                v: 240
            }
        );
        assert_eq!(&y[0..8], &[100, 100, 82, 82, 82, 82, 100, 100]);
        assert_eq!(&y[8..16], &[100, 100, 82, 82, 82, 82, 100, 100]);
        assert_eq!(&y[16..24], &[100; 8]);
        assert_eq!(&u[0..4], &[128, 90, 90, 128]);
        assert_eq!(&v[0..4], &[128, 240, 240, 128]);
        assert_eq!(&u[4..8], &[128; 4]);
    }

    #[test]
    fn opacity_blends_as_computed_and_the_keep_out_area_is_left_alone() {
        let (mut y, mut u, mut v) = frame();
        let mut planes = i420(&mut y, &mut u, &mut v);
        planes.set_opacity(50);
        planes.set_keep_out(Some(Rectangle::new(Point::zero(), Size::new(4, 2))));
        planes
            .fill_solid(
                &Rectangle::new(Point::zero(), Size::new(8, 4)),
                Rgb888::new(0, 0, 0),
            )
            .unwrap();
        // Black is Y 16: halfway from 100 is 58.
        assert_eq!(&y[0..8], &[100, 100, 100, 100, 58, 58, 58, 58]);
        assert_eq!(&y[16..24], &[58; 8]);
    }

    #[test]
    fn a_sprite_blends_each_pixel_with_its_alpha_and_the_opacity() {
        use crate::overlay::sprite::{tests::png, Sprite};
        // White: opaque on the left column, alpha 128 on the right.
        let bytes = png(2, 2, |x, _| [255, 255, 255, if x == 0 { 255 } else { 128 }]);
        let sprite = Sprite::decode(&bytes[..], 1).unwrap();
        let (mut y, mut u, mut v) = frame();
        let mut planes = i420(&mut y, &mut u, &mut v);
        planes.blend_sprite(&sprite, Point::new(2, 0));
        planes.set_opacity(50);
        planes.blend_sprite(&sprite, Point::new(5, 2));
        // White is Y 235. Alpha 128 is 129/256: 100 → 168. At 50 %
        // opacity the opaque pixel goes half way (167), the other a
        // quarter (133).
        assert_eq!(&y[0..8], &[100, 100, 235, 168, 100, 100, 100, 100]);
        assert_eq!(&y[16..24], &[100, 100, 100, 100, 100, 167, 133, 100]);
        // White's chroma is neutral: unchanged.
        assert_eq!(u, vec![128; 8]);
    }

    #[test]
    fn nv12_chroma_is_written_in_pairs() {
        let mut y = vec![100; 4 * 2];
        let mut uv = vec![128; 4];
        let mut none = Vec::new();
        let mut planes = Planes::new(
            Size::new(4, 2),
            Chroma::Interleaved,
            Plane {
                data: &mut y,
                stride: 4,
            },
            Plane {
                data: &mut uv,
                stride: 4,
            },
            Plane {
                data: &mut none,
                stride: 0,
            },
        );
        planes
            .fill_solid(
                &Rectangle::new(Point::new(2, 0), Size::new(2, 2)),
                Rgb888::new(255, 0, 0),
            )
            .unwrap();
        assert_eq!(uv, vec![128, 128, 90, 240]);
    }
}
