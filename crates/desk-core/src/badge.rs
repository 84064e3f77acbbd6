//! The pending count drawn on the tray icon: a red disc in the top-right corner with the count in
//! white ("9+" above nine), for panels that show only the icon and no label (GNOME's, Windows').
//! The digits come from a 3×5 pixel font scaled up: the only text ever drawn is 0–9 and "+",
//! which does not warrant shipping a font file and a rasterizer.

/// Red of the disc, white of the digits and the ring that separates the disc from the icon.
const RED: [u8; 4] = [0xdc, 0x26, 0x26, 0xff];
const WHITE: [u8; 4] = [0xff, 0xff, 0xff, 0xff];

/// Rows of 3 bits, top to bottom, most significant bit on the left.
const GLYPHS: [(char, [u8; 5]); 11] = [
    ('0', [0b111, 0b101, 0b101, 0b101, 0b111]),
    ('1', [0b010, 0b110, 0b010, 0b010, 0b111]),
    ('2', [0b111, 0b001, 0b111, 0b100, 0b111]),
    ('3', [0b111, 0b001, 0b111, 0b001, 0b111]),
    ('4', [0b101, 0b101, 0b111, 0b001, 0b001]),
    ('5', [0b111, 0b100, 0b111, 0b001, 0b111]),
    ('6', [0b111, 0b100, 0b111, 0b101, 0b111]),
    ('7', [0b111, 0b001, 0b010, 0b010, 0b010]),
    ('8', [0b111, 0b101, 0b111, 0b101, 0b111]),
    ('9', [0b111, 0b101, 0b111, 0b001, 0b111]),
    ('+', [0b000, 0b010, 0b111, 0b010, 0b000]),
];

/// What the badge says: nothing for no pending request, the count up to nine, then "9+".
pub fn label(count: usize) -> Option<String> {
    match count {
        0 => None,
        1..=9 => Some(count.to_string()),
        _ => Some("9+".into()),
    }
}

/// Where the disc sits on a `size`×`size` icon: its centre and radius, in pixels.
pub fn disc(size: u32) -> (f32, f32, f32) {
    let r = size as f32 * 0.3;
    (size as f32 - r - 1.0, r + 1.0, r)
}

/// The icon (`rgba`, `width`×`height`, 4 bytes a pixel) with the count drawn on it; the icon
/// itself when there is nothing to count.
pub fn draw(rgba: &[u8], width: u32, height: u32, count: usize) -> Vec<u8> {
    let mut out = rgba.to_vec();
    let Some(text) = label(count) else {
        return out;
    };
    let size = width.min(height);
    let (cx, cy, r) = disc(size);
    let mut put = |x: u32, y: u32, color: [u8; 4]| {
        if x < width && y < height {
            let i = ((y * width + x) * 4) as usize;
            out[i..i + 4].copy_from_slice(&color);
        }
    };
    let ring = (size as f32 / 32.0).max(1.0);
    for y in 0..height {
        for x in 0..width {
            let d = ((x as f32 + 0.5 - cx).powi(2) + (y as f32 + 0.5 - cy).powi(2)).sqrt();
            if d <= r {
                put(x, y, RED);
            } else if d <= r + ring {
                put(x, y, WHITE);
            }
        }
    }
    // The largest scale at which the text fits in 80 % of the disc's width.
    let glyphs: Vec<&[u8; 5]> = text
        .chars()
        .filter_map(|c| GLYPHS.iter().find(|(g, _)| *g == c).map(|(_, rows)| rows))
        .collect();
    let columns = glyphs.len() as f32 * 4.0 - 1.0;
    let scale = ((2.0 * r * 0.8) / columns)
        .min(2.0 * r * 0.6 / 5.0)
        .floor()
        .max(1.0) as u32;
    let text_w = (columns as u32) * scale;
    let text_h = 5 * scale;
    let left = (cx - text_w as f32 / 2.0).round().max(0.0) as u32;
    let top = (cy - text_h as f32 / 2.0).round().max(0.0) as u32;
    for (n, rows) in glyphs.iter().enumerate() {
        let x0 = left + n as u32 * 4 * scale;
        for (row, bits) in rows.iter().enumerate() {
            for col in 0..3u32 {
                if bits & (0b100 >> col) == 0 {
                    continue;
                }
                for dy in 0..scale {
                    for dx in 0..scale {
                        put(x0 + col * scale + dx, top + row as u32 * scale + dy, WHITE);
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE: u32 = 64;

    fn icon() -> Vec<u8> {
        // A recognisable background: every pixel blue.
        [0x10, 0x40, 0xc0, 0xff].repeat((SIZE * SIZE) as usize)
    }

    fn pixel(rgba: &[u8], x: u32, y: u32) -> [u8; 4] {
        let i = ((y * SIZE + x) * 4) as usize;
        rgba[i..i + 4].try_into().unwrap()
    }

    #[test]
    fn the_label_counts_to_nine() {
        assert_eq!(label(0), None);
        assert_eq!(label(1).as_deref(), Some("1"));
        assert_eq!(label(9).as_deref(), Some("9"));
        assert_eq!(label(10).as_deref(), Some("9+"));
        assert_eq!(label(250).as_deref(), Some("9+"));
    }

    #[test]
    fn nothing_pending_leaves_the_icon_alone() {
        assert_eq!(draw(&icon(), SIZE, SIZE, 0), icon());
    }

    #[test]
    fn a_count_draws_a_red_disc_with_white_digits_in_the_corner_only() {
        let base = icon();
        let badged = draw(&base, SIZE, SIZE, 3);
        let (cx, cy, r) = disc(SIZE);
        // Just inside the disc's left edge: red, not text.
        assert_eq!(pixel(&badged, (cx - r + 2.0) as u32, cy as u32), RED);
        // The digits are white and inside the disc.
        let white_inside = (0..SIZE)
            .flat_map(|y| (0..SIZE).map(move |x| (x, y)))
            .filter(|&(x, y)| {
                let d = ((x as f32 + 0.5 - cx).powi(2) + (y as f32 + 0.5 - cy).powi(2)).sqrt();
                d < r - 1.0 && pixel(&badged, x, y) == WHITE
            })
            .count();
        assert!(white_inside > 20, "the digit is drawn ({white_inside} px)");
        // The rest of the icon is untouched.
        for (x, y) in [(0, 0), (0, SIZE - 1), (SIZE / 2, SIZE - 1), (5, SIZE / 2)] {
            assert_eq!(pixel(&badged, x, y), pixel(&base, x, y), "({x},{y})");
        }
    }

    #[test]
    fn each_count_looks_different() {
        let base = icon();
        let images: Vec<Vec<u8>> = [1, 2, 7, 8, 12]
            .iter()
            .map(|&n| draw(&base, SIZE, SIZE, n))
            .collect();
        for i in 0..images.len() {
            for j in i + 1..images.len() {
                assert_ne!(images[i], images[j], "counts {i} and {j}");
            }
        }
        assert_eq!(draw(&base, SIZE, SIZE, 12), draw(&base, SIZE, SIZE, 40));
    }

    #[test]
    fn small_icons_still_get_a_readable_badge() {
        let base = [0u8, 0, 0, 255].repeat(16 * 16);
        let badged = draw(&base, 16, 16, 5);
        assert_ne!(badged, base);
        assert_eq!(badged.len(), base.len());
    }
}
