//! Latency percentile plots as hand-written SVG: no plotting crate, one self-contained file.
//!
//! The x axis is the percentile on the usual HdrHistogram log scale: position `log10(1 / (1 - q))`, so 0 %,
//! 90 %, 99 %, 99.9 %, ... are equally spaced and the tail gets the room. The y axis is linear latency from 0.
//! Several series share the axes (one polyline each, with a legend), e.g. the order-to-ack distribution beside
//! the ping-pong floor. The quantile-1 point (the maximum) is drawn at the right edge.
//!
//! # Limits
//! - At most [`SERIES_MAX`] series (the palette) and [`POINTS_MAX`] points per series; extra ones are left out.
//! - Quantiles are clamped to `1 - 10^-DECADES_MAX` (99.9999 %) on the x axis.
//!
//! Each polyline carries `class="series"` and `data-name="<series name>"`, so tests and scripts can find them.

use std::fmt::Write;

use hdrhistogram::Histogram;

use crate::hgrm::TICKS_PER_HALF_DISTANCE;

/// Series drawn at most (the palette size).
pub const SERIES_MAX: usize = 8;
/// Points drawn per series at most.
pub const POINTS_MAX: usize = 4096;
/// Largest x decade: 6 is 99.9999 %.
pub const DECADES_MAX: u32 = 6;

const PALETTE: [&str; SERIES_MAX] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
];
const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 520.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;

/// One named curve: `(quantile, value)` points, quantile in `0..=1`, value in the plot's unit.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// Points in increasing quantile order.
    pub points: Vec<(f64, f64)>,
}

/// The percentile distribution of `histogram` (HdrHistogram quantile iteration), values divided by
/// `unit_ratio` (1000.0: nanoseconds to microseconds).
pub fn series_from_histogram(name: &str, histogram: &Histogram<u64>, unit_ratio: f64) -> Series {
    let points = if histogram.is_empty() {
        Vec::new()
    } else {
        histogram
            .iter_quantiles(TICKS_PER_HALF_DISTANCE)
            .map(|step| {
                (
                    step.quantile_iterated_to(),
                    step.value_iterated_to() as f64 / unit_ratio,
                )
            })
            .collect()
    };
    Series {
        name: name.to_owned(),
        points,
    }
}

/// The x position of quantile `q`: `log10(1 / (1 - q))`, clamped to `0..=DECADES_MAX`.
pub fn percentile_axis(q: f64) -> f64 {
    let tail = (1.0 - q).max(10f64.powi(-(DECADES_MAX as i32)));
    (-tail.log10()).clamp(0.0, f64::from(DECADES_MAX))
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A "nice" step (1, 2 or 5 times a power of ten) giving about `count` ticks up to `max`.
fn nice_step(max: f64, count: f64) -> f64 {
    let raw = (max / count).max(f64::MIN_POSITIVE);
    let power = 10f64.powf(raw.log10().floor());
    let mantissa = raw / power;
    let nice = if mantissa <= 1.0 {
        1.0
    } else if mantissa <= 2.0 {
        2.0
    } else if mantissa <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * power
}

fn decade_label(decade: u32) -> String {
    match decade {
        0 => "0%".to_owned(),
        1 => "90%".to_owned(),
        d => format!("99.{}%", "9".repeat(d as usize - 2)).replace("99.%", "99%"),
    }
}

/// Draws `series` as an SVG document: `title` on top, y axis labelled `latency (<unit>)`.
pub fn percentile_svg(title: &str, unit: &str, series: &[Series]) -> String {
    let series = &series[..series.len().min(SERIES_MAX)];
    let drawn = |s: &Series| -> Vec<(f64, f64)> {
        s.points
            .iter()
            .take(POINTS_MAX)
            .filter(|(q, v)| q.is_finite() && v.is_finite())
            .copied()
            .collect()
    };
    let all: Vec<Vec<(f64, f64)>> = series.iter().map(drawn).collect();
    // x range: whole decades covering the deepest quantile below 1 (at least 99 %).
    let deepest = all
        .iter()
        .flatten()
        .filter(|(q, _)| *q < 1.0)
        .map(|(q, _)| percentile_axis(*q))
        .fold(2.0f64, f64::max);
    let decades = (deepest.ceil() as u32).clamp(2, DECADES_MAX);
    let y_max_data = all.iter().flatten().map(|(_, v)| *v).fold(0.0f64, f64::max);
    let y_step = nice_step(if y_max_data > 0.0 { y_max_data } else { 1.0 }, 6.0);
    let y_max = ((y_max_data / y_step).ceil().max(1.0)) * y_step;

    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x_of = |q: f64| LEFT + percentile_axis(q).min(f64::from(decades)) / f64::from(decades) * plot_w;
    let y_of = |v: f64| TOP + plot_h - (v / y_max).clamp(0.0, 1.0) * plot_h;

    let mut svg = String::new();
    // Writing to a String cannot fail: the results are ignored.
    let _ = writeln!(
        svg,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">
<title>{}</title>
<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="white"/>
<text x="{}" y="28" text-anchor="middle" font-size="16">{}</text>"#,
        escape(title),
        WIDTH / 2.0,
        escape(title)
    );
    // Grid and axis labels.
    let _ = writeln!(svg, r##"<g class="grid" stroke="#dddddd" stroke-width="1">"##);
    for decade in 0..=decades {
        let x = LEFT + f64::from(decade) / f64::from(decades) * plot_w;
        let _ = writeln!(
            svg,
            r#"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}"/>"#,
            TOP + plot_h
        );
    }
    let mut tick = 0.0;
    while tick <= y_max + y_step / 2.0 {
        let y = y_of(tick);
        let _ = writeln!(
            svg,
            r#"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}"/>"#,
            LEFT + plot_w
        );
        tick += y_step;
    }
    let _ = writeln!(svg, "</g>");
    let _ = writeln!(svg, r#"<g class="labels" fill="black">"#);
    for decade in 0..=decades {
        let x = LEFT + f64::from(decade) / f64::from(decades) * plot_w;
        let _ = writeln!(
            svg,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            TOP + plot_h + 18.0,
            decade_label(decade)
        );
    }
    let mut tick = 0.0;
    while tick <= y_max + y_step / 2.0 {
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 6.0,
            y_of(tick) + 4.0,
            format_value(tick)
        );
        tick += y_step;
    }
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">percentile</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 15.0
    );
    let _ = writeln!(
        svg,
        r#"<text x="18" y="{:.1}" text-anchor="middle" transform="rotate(-90 18 {:.1})">latency ({})</text>"#,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0,
        escape(unit)
    );
    let _ = writeln!(svg, "</g>");
    let _ = writeln!(
        svg,
        r#"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="black"/>"#
    );
    // The curves and the legend.
    for (index, (s, points)) in series.iter().zip(&all).enumerate() {
        let color = PALETTE[index];
        let mut coords = String::new();
        for &(q, v) in points {
            let _ = write!(coords, "{:.1},{:.1} ", x_of(q), y_of(v));
        }
        let _ = writeln!(
            svg,
            r#"<polyline class="series" data-name="{}" fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            escape(&s.name),
            coords.trim_end()
        );
        let y = TOP + 16.0 + 18.0 * index as f64;
        let _ = writeln!(
            svg,
            r#"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{color}" stroke-width="3"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            LEFT + 12.0,
            LEFT + 36.0,
            LEFT + 42.0,
            y + 4.0,
            escape(&s.name)
        );
    }
    let _ = writeln!(svg, "</svg>");
    svg
}

fn format_value(v: f64) -> String {
    if v == v.trunc() {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_spaces_nines_evenly() {
        assert_eq!(percentile_axis(0.0), 0.0);
        assert!((percentile_axis(0.9) - 1.0).abs() < 1e-9);
        assert!((percentile_axis(0.99) - 2.0).abs() < 1e-9);
        assert!((percentile_axis(0.999) - 3.0).abs() < 1e-9);
        assert_eq!(percentile_axis(1.0), f64::from(DECADES_MAX));
        assert_eq!(decade_label(2), "99%");
        assert_eq!(decade_label(4), "99.99%");
    }

    #[test]
    fn draws_one_polyline_per_series_with_escaped_names() {
        let mut h = Histogram::<u64>::new(3).unwrap();
        for v in 1..=10_000u64 {
            h.record(v).unwrap();
        }
        let a = series_from_histogram("order-to-ack <sync none>", &h, 1000.0);
        assert_eq!(a.points.last().unwrap().0, 1.0);
        let b = Series {
            name: "ping-pong & floor".into(),
            points: vec![(0.0, 1.0), (0.5, 2.0), (0.99, 3.0), (1.0, 4.0)],
        };
        let svg = percentile_svg("bourse <load>", "us", &[a, b]);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains(r#"data-name="order-to-ack &lt;sync none&gt;""#));
        assert!(svg.contains(r#"data-name="ping-pong &amp; floor""#));
        assert!(svg.contains("<title>bourse &lt;load&gt;</title>"));
        assert!(svg.contains(">99.9%<"));
        assert!(svg.trim_end().ends_with("</svg>"));
        // Every coordinate inside the drawing.
        for poly in svg.lines().filter(|l| l.starts_with("<polyline")) {
            let points = poly.split("points=\"").nth(1).unwrap().trim_end_matches("\"/>");
            for pair in points.split_whitespace() {
                let (x, y) = pair.split_once(',').unwrap();
                let (x, y): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
                assert!((LEFT..=WIDTH - RIGHT + 0.1).contains(&x), "{x}");
                assert!((TOP..=HEIGHT - BOTTOM + 0.1).contains(&y), "{y}");
            }
        }
    }

    #[test]
    fn empty_input_is_still_a_document() {
        let svg = percentile_svg("nothing", "us", &[]);
        assert!(svg.starts_with("<?xml"));
        assert!(svg.contains("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 0);
    }
}
