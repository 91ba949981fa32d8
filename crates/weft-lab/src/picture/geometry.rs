//! Geometry for the picture: points, boxes, how wide a line of text is, and where the hop
//! badges of a trace go so that they cover no text and no other badge. Pure.

/// A point in the drawing's own units (the SVG's viewBox).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub x: f64,
    pub y: f64,
}

impl Point {
    pub fn new(x: f64, y: f64) -> Point {
        Point { x, y }
    }

    pub fn distance(self, other: Point) -> f64 {
        ((self.x - other.x).powi(2) + (self.y - other.y).powi(2)).sqrt()
    }

    /// Both coordinates to a tenth of a unit, as the SVG writes them: points that print
    /// alike are alike.
    pub fn key(self) -> (i64, i64) {
        ((self.x * 10.0).round() as i64, (self.y * 10.0).round() as i64)
    }
}

/// An axis-aligned box: `x`, `y` its top-left corner.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

impl Rect {
    pub fn new(x: f64, y: f64, w: f64, h: f64) -> Rect {
        Rect { x, y, w, h }
    }

    /// The square around a circle.
    pub fn around(centre: Point, radius: f64) -> Rect {
        Rect::new(centre.x - radius, centre.y - radius, 2.0 * radius, 2.0 * radius)
    }

    pub fn right(&self) -> f64 {
        self.x + self.w
    }

    pub fn bottom(&self) -> f64 {
        self.y + self.h
    }

    pub fn centre(&self) -> Point {
        Point::new(self.x + self.w / 2.0, self.y + self.h / 2.0)
    }

    /// Whether the two share any area (touching edges do not).
    pub fn intersects(&self, other: &Rect) -> bool {
        self.x < other.right() && other.x < self.right() && self.y < other.bottom() && other.y < self.bottom()
    }

    pub fn contains(&self, other: &Rect) -> bool {
        other.x >= self.x
            && other.y >= self.y
            && other.right() <= self.right()
            && other.bottom() <= self.bottom()
    }

    pub fn grow(&self, by: f64) -> Rect {
        Rect::new(self.x - by, self.y - by, self.w + 2.0 * by, self.h + 2.0 * by)
    }
}

/// Advance widths of DejaVu Sans, the sans-serif of Debian's Chromium, for printable ASCII
/// (from the space on), in thousandths of an em; measured in Chromium.
const REGULAR: [u16; 95] = [
    318, 401, 460, 838, 637, 951, 780, 275, 391, 391, 500, 838, 318, 361, 318, 337, //
    637, 637, 637, 637, 637, 637, 637, 637, 637, 637, 337, 337, 838, 838, 838, 531, //
    1000, 710, 686, 699, 770, 632, 576, 775, 752, 295, 295, 656, 558, 863, 748, 788, //
    603, 788, 695, 635, 595, 732, 685, 989, 686, 611, 686, 391, 337, 391, 838, 500, //
    500, 613, 635, 550, 635, 616, 345, 635, 634, 278, 278, 580, 278, 975, 634, 612, //
    635, 635, 396, 521, 393, 634, 592, 818, 592, 592, 525, 637, 337, 637, 838,
];
const BOLD: [u16; 95] = [
    348, 457, 521, 838, 696, 1002, 873, 307, 457, 457, 523, 838, 380, 415, 380, 366, //
    696, 696, 696, 696, 696, 696, 696, 696, 696, 696, 400, 400, 838, 838, 838, 581, //
    1000, 774, 763, 734, 831, 684, 684, 821, 837, 373, 373, 775, 638, 996, 837, 851, //
    733, 851, 770, 680, 703, 812, 774, 1103, 771, 725, 726, 457, 366, 457, 838, 500, //
    500, 675, 716, 593, 716, 679, 405, 716, 712, 343, 343, 665, 343, 1042, 712, 687, //
    716, 716, 494, 596, 478, 712, 652, 924, 645, 652, 582, 712, 366, 712, 838,
];

/// How wide `text` is at `size` units. Exact for DejaVu Sans; other fonts of its family
/// (Verdana, Bitstream Vera) are as wide or narrower, and a character outside the table
/// counts as a full em, so a box sized by this holds its text.
pub fn text_width(text: &str, size: f64, bold: bool) -> f64 {
    let table = if bold { &BOLD } else { &REGULAR };
    let thousandths: u32 = text
        .chars()
        .map(|c| match c {
            ' '..='~' => u32::from(table[c as usize - 32]),
            '·' => 380,
            '→' | '⇄' | '←' => 838,
            '★' => 897,
            '◀' | '▶' => 769,
            _ => 1000,
        })
        .sum();
    f64::from(thousandths) / 1000.0 * size
}

/// DejaVu Sans reaches this far above the baseline and below it, in ems: a line of text
/// covers `[baseline - ASCENT·size, baseline + DESCENT·size]`.
pub const ASCENT: f64 = 0.93;
pub const DESCENT: f64 = 0.24;

/// The box a line of text covers: `x` where it starts (`anchor` start) or its middle
/// (`anchor` middle), `y` its baseline.
pub fn text_box(text: &str, x: f64, y: f64, size: f64, bold: bool, middle: bool) -> Rect {
    let w = text_width(text, size, bold);
    let left = if middle { x - w / 2.0 } else { x };
    Rect::new(left, y - ASCENT * size, w, (ASCENT + DESCENT) * size)
}

/// Where a badge of `radius` around `anchor` goes: the free place nearest the anchor (the
/// anchor itself, else on rings around it, outwards), where its box meets none of
/// `obstacles` (kept `clearance` away) and stays inside `bounds`. Rings widen until a place
/// is found, so two badges never share a spot; only a drawing with no room left anywhere
/// gets None.
pub fn place_badge(
    anchor: Point,
    radius: f64,
    clearance: f64,
    obstacles: &[Rect],
    bounds: &Rect,
) -> Option<Point> {
    let free = |centre: Point| {
        let area = Rect::around(centre, radius);
        bounds.contains(&area) && !obstacles.iter().any(|o| o.grow(clearance).intersects(&area))
    };
    if free(anchor) {
        return Some(anchor);
    }
    let reach = bounds.w.max(bounds.h);
    let mut ring = radius * 0.75;
    while ring < reach {
        // More places on wider rings, about a badge's width apart; first up and to the
        // right, where a label's end usually leaves room.
        let steps = ((2.0 * std::f64::consts::PI * ring) / (radius * 1.2)).ceil().max(8.0) as usize;
        for i in 0..steps {
            // Alternating either side of the first angle, so nearer angles come first.
            let k = i.div_ceil(2) as f64 * if i % 2 == 0 { 1.0 } else { -1.0 };
            let angle = -std::f64::consts::FRAC_PI_4 + k * 2.0 * std::f64::consts::PI / steps as f64;
            let centre = Point::new(anchor.x + ring * angle.cos(), anchor.y + ring * angle.sin());
            if free(centre) {
                return Some(centre);
            }
        }
        ring += radius * 0.75;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_add_up_per_character() {
        // "10.244.0.1": 7 digits and 3 dots.
        let w = text_width("10.244.0.1", 10.0, false);
        assert!((w - (7.0 * 6.37 + 3.0 * 3.18)).abs() < 1e-9, "{w}");
        assert!(text_width("n1", 10.0, true) > text_width("n1", 10.0, false));
        assert_eq!(text_width("漢", 10.0, false), 10.0, "unknown characters count as an em");
        let b = text_box("abc", 100.0, 50.0, 10.0, false, true);
        assert!((b.centre().x - 100.0).abs() < 1e-9 && b.y < 50.0 && b.bottom() > 50.0);
    }

    #[test]
    fn a_badge_stays_where_it_is_free_and_moves_off_what_it_would_cover() {
        let bounds = Rect::new(0.0, 0.0, 400.0, 400.0);
        let at = Point::new(100.0, 100.0);
        assert_eq!(place_badge(at, 10.0, 2.0, &[], &bounds), Some(at));
        let text = Rect::new(60.0, 90.0, 120.0, 20.0);
        let moved = place_badge(at, 10.0, 2.0, &[text], &bounds).unwrap();
        assert!(!text.grow(2.0).intersects(&Rect::around(moved, 10.0)));
        assert!(moved.distance(at) < 40.0, "nearby: {moved:?}");
        // Boxed in on every side near the anchor: it goes further out, never on top.
        let walls: Vec<Rect> = (0..8)
            .flat_map(|i| (0..8).map(move |j| (i, j)))
            .filter(|(i, j)| (*i, *j) != (7, 7))
            .map(|(i, j)| Rect::new(60.0 + i as f64 * 10.0, 60.0 + j as f64 * 10.0, 9.0, 9.0))
            .collect();
        let out = place_badge(at, 10.0, 1.0, &walls, &bounds).unwrap();
        assert!(walls.iter().all(|w| !w.grow(1.0).intersects(&Rect::around(out, 10.0))));
        // And it never leaves the drawing.
        let corner = place_badge(Point::new(2.0, 2.0), 10.0, 0.0, &[], &bounds).unwrap();
        assert!(bounds.contains(&Rect::around(corner, 10.0)));
        assert!(place_badge(at, 300.0, 0.0, &[], &bounds).is_none(), "no room at all");
    }
}
