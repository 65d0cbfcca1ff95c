//! The latency stamp: a frame's capture time and frame id drawn into its
//! picture as large black and white blocks, so any client that decodes the
//! video can compute capture→display latency. The layout is documented in
//! `docs/latency-stamp.md`; this module is its reference implementation.
//!
//! Grid: 16 columns × 8 rows of square cells at the top-left corner of the
//! picture, cell size `cell_size(width)`. Bits are read row by row, left to
//! right, most significant bit first; white = 1, black = 0.
//!   row 0    sync word `SYNC`
//!   rows 1–4 capture time, microseconds since the Unix epoch (u64)
//!   rows 5–6 frame id (u32)
//!   row 7    CRC-16/CCITT-FALSE over the 12 bytes of time and frame id

pub const COLUMNS: usize = 16;
pub const ROWS: usize = 8;
/// A fixed, non-periodic pattern: finding it tells a reader the stamp is there.
pub const SYNC: u16 = 0xB38F;
/// Studio-range luma for black and white: what encoders keep exactly.
const BLACK: u8 = 16;
const WHITE: u8 = 235;

/// What the stamp carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub capture_time_us: u64,
    pub frame_id: u32,
}

/// Cell edge in pixels for a picture `width` pixels wide: about 1/64 of the
/// width, rounded down to a power of two between 8 and 32. Powers of two
/// from 8 up align every cell with H.264's 8×8 transform blocks and, from
/// 16 up, with its macroblocks: an encoder then codes each cell whole, never
/// half of it (20-pixel cells came out as blends of two frames).
pub fn cell_size(width: usize) -> usize {
    let target = (width / 64).clamp(8, 32);
    1 << target.ilog2()
}

/// The 16-bit words in grid order.
fn words(stamp: Stamp) -> [u16; ROWS] {
    let t = stamp.capture_time_us;
    let id = stamp.frame_id;
    let mut words = [
        SYNC,
        (t >> 48) as u16,
        (t >> 32) as u16,
        (t >> 16) as u16,
        t as u16,
        (id >> 16) as u16,
        id as u16,
        0,
    ];
    words[7] = crc16(&words[1..7]);
    words
}

/// CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) over big-endian words.
fn crc16(words: &[u16]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for byte in words.iter().flat_map(|w| w.to_be_bytes()) {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Whether a picture of this size can hold the stamp.
pub fn fits(width: usize, height: usize) -> bool {
    let cell = cell_size(width);
    width >= COLUMNS * cell && height >= ROWS * cell
}

/// Draws the stamp into a luma plane (`stride` bytes per row). The caller
/// makes the chroma of the same area neutral (see [`paint_chroma`]).
pub fn paint_luma(stamp: Stamp, width: usize, luma: &mut [u8], stride: usize) {
    let cell = cell_size(width);
    for (row, word) in words(stamp).into_iter().enumerate() {
        for column in 0..COLUMNS {
            let bit = word >> (COLUMNS - 1 - column) & 1;
            let value = if bit == 1 { WHITE } else { BLACK };
            for y in row * cell..(row + 1) * cell {
                let start = y * stride + column * cell;
                if let Some(line) = luma.get_mut(start..start + cell) {
                    line.fill(value);
                }
            }
        }
    }
}

/// Makes one subsampled (4:2:0) chroma plane neutral under the stamp, so the
/// blocks are pure grey levels whatever the picture's colours were.
pub fn paint_chroma(width: usize, chroma: &mut [u8], stride: usize) {
    let cell = cell_size(width);
    let (w, h) = (COLUMNS * cell / 2, ROWS * cell / 2);
    for y in 0..h {
        if let Some(line) = chroma.get_mut(y * stride..y * stride + w) {
            line.fill(128);
        }
    }
}

/// Reads a stamp back from a decoded luma plane; `None` when the sync word
/// or the checksum does not match (no stamp, or too damaged to trust).
pub fn read(width: usize, height: usize, luma: &[u8], stride: usize) -> Option<Stamp> {
    if !fits(width, height) {
        return None;
    }
    let cell = cell_size(width);
    // Average the middle half of each cell: block edges blur under H.264.
    let (inset, span) = (cell / 4, (cell / 2).max(1));
    let mut read_words = [0u16; ROWS];
    for (row, word) in read_words.iter_mut().enumerate() {
        for column in 0..COLUMNS {
            let (x0, y0) = (column * cell + inset, row * cell + inset);
            let mut sum = 0u32;
            for y in y0..y0 + span {
                let line = luma.get(y * stride + x0..y * stride + x0 + span)?;
                sum += line.iter().map(|&v| u32::from(v)).sum::<u32>();
            }
            let mean = sum / (span * span) as u32;
            let bit = u16::from(mean >= u32::from(BLACK / 2 + WHITE / 2));
            *word = *word << 1 | bit;
        }
    }
    if read_words[0] != SYNC || read_words[7] != crc16(&read_words[1..7]) {
        return None;
    }
    let w = read_words.map(u64::from);
    Some(Stamp {
        capture_time_us: w[1] << 48 | w[2] << 32 | w[3] << 16 | w[4],
        frame_id: (w[5] << 16 | w[6]) as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAMP: Stamp = Stamp {
        capture_time_us: 1_795_000_000_123_456,
        frame_id: 0x0102_0304,
    };

    fn painted(width: usize, height: usize) -> Vec<u8> {
        let mut luma = vec![90u8; width * height];
        paint_luma(STAMP, width, &mut luma, width);
        luma
    }

    #[test]
    fn round_trip_at_common_sizes() {
        for (w, h) in [
            (160, 120),
            (640, 480),
            (1280, 720),
            (1920, 1080),
            (3840, 2160),
        ] {
            assert_eq!(read(w, h, &painted(w, h), w), Some(STAMP), "{w}x{h}");
        }
    }

    #[test]
    fn survives_noise_and_blur_at_cell_edges() {
        let (w, h) = (1280, 720);
        let mut luma = painted(w, h);
        for (i, v) in luma.iter_mut().enumerate() {
            *v = v.saturating_add((i * 7919 % 41) as u8).saturating_sub(20);
        }
        assert_eq!(read(w, h, &luma, w), Some(STAMP));
    }

    #[test]
    fn a_flipped_bit_is_rejected() {
        let (w, h) = (640, 480);
        let mut luma = painted(w, h);
        let cell = cell_size(w);
        // Invert the cell at row 3, column 5.
        for y in 3 * cell..4 * cell {
            for x in 5 * cell..6 * cell {
                luma[y * w + x] = 255 - luma[y * w + x];
            }
        }
        assert_eq!(read(w, h, &luma, w), None);
    }

    #[test]
    fn plain_picture_has_no_stamp() {
        assert_eq!(read(640, 480, &vec![128u8; 640 * 480], 640), None);
    }

    #[test]
    fn cell_size_is_a_bounded_power_of_two() {
        assert_eq!(cell_size(160), 8);
        assert_eq!(cell_size(640), 8);
        assert_eq!(cell_size(1280), 16);
        assert_eq!(cell_size(1920), 16);
        assert_eq!(cell_size(3840), 32);
    }

    #[test]
    fn crc_matches_reference_vector() {
        // CRC-16/CCITT-FALSE of "123456789" is 0x29B1.
        let words = [0x3132, 0x3334, 0x3536, 0x3738];
        let mut crc = crc16(&words);
        // Extend with the ninth byte by hand.
        crc ^= u16::from(b'9') << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
        assert_eq!(crc, 0x29B1);
    }
}
