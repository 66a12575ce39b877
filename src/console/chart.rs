//! Server-rendered SVG line charts of the sampler's history (`metrics::history`): no
//! JavaScript, one `<svg>` per chart with a `<polyline>` per series over the last hour,
//! the y axis from 0 to the largest value shown.

use maud::{html, Markup, PreEscaped};

use crate::metrics::history::{Point, WINDOW};

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 160.0;
/// Room for the y labels on the left and the time labels below.
const LEFT: f64 = 64.0;
const BOTTOM: f64 = 18.0;
const TOP: f64 = 8.0;
/// Colours of successive series (the stylesheet's palette).
const COLOURS: &[&str] = &[
    "#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#0e7490",
];

/// What the values measure, for the axis labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    BytesPerSecond,
    PerSecond,
    Count,
}

impl Unit {
    pub fn format(self, v: f64) -> String {
        match self {
            Unit::BytesPerSecond => format!("{}/s", human(v, "B")),
            Unit::PerSecond => format!("{}/s", human(v, "")),
            Unit::Count => human(v, ""),
        }
    }
}

/// `v` with a k/M/G/T prefix and at most three significant digits.
fn human(v: f64, suffix: &str) -> String {
    let prefixes = ["", "k", "M", "G", "T"];
    let mut v = v;
    let mut i = 0;
    while v.abs() >= 1000.0 && i < prefixes.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    let digits = if v == v.trunc() || v.abs() >= 100.0 {
        0
    } else if v.abs() >= 10.0 {
        1
    } else {
        2
    };
    format!("{v:.digits$} {}{suffix}", prefixes[i])
        .trim_end()
        .to_string()
}

/// One named series.
pub struct Line {
    pub name: String,
    pub points: Vec<Point>,
}

/// The SVG polyline coordinates of `points` in the window ending at `now_ms`, on a y
/// scale whose top is `max`.
fn coordinates(points: &[Point], now_ms: i64, max: f64) -> String {
    let start = now_ms - WINDOW.as_millis() as i64;
    let plot_w = WIDTH - LEFT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    points
        .iter()
        .filter(|p| p.t_ms >= start && p.t_ms <= now_ms)
        .map(|p| {
            let x = LEFT + (p.t_ms - start) as f64 / WINDOW.as_millis() as f64 * plot_w;
            let y = TOP + plot_h - (p.v / max).clamp(0.0, 1.0) * plot_h;
            format!("{x:.1},{y:.1}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A chart titled `title` of `lines` over the hour ending at `now_ms`; `id` names it for
/// tests and links.
pub fn render(id: &str, title: &str, unit: Unit, lines: &[Line], now_ms: i64) -> Markup {
    let max = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.v))
        .fold(0.0f64, f64::max);
    // A flat zero line still gets a scale.
    let top = if max > 0.0 { max } else { 1.0 };
    let plot_bottom = HEIGHT - BOTTOM;
    let empty = lines.iter().all(|l| l.points.is_empty());
    html! {
        figure.chart id=(id) {
            figcaption { (title) }
            svg xmlns="http://www.w3.org/2000/svg" width=(WIDTH) height=(HEIGHT)
                viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" aria-label=(title) {
                line x1=(LEFT) y1=(plot_bottom) x2=(WIDTH) y2=(plot_bottom) stroke="#8c959f" {}
                line x1=(LEFT) y1=(TOP) x2=(LEFT) y2=(plot_bottom) stroke="#8c959f" {}
                text x=(LEFT - 4.0) y=(TOP + 8.0) text-anchor="end" font-size="10" { (unit.format(top)) }
                text x=(LEFT - 4.0) y=(plot_bottom) text-anchor="end" font-size="10" { "0" }
                text x=(LEFT) y=(HEIGHT - 4.0) font-size="10" { "−60 min" }
                text x=(WIDTH) y=(HEIGHT - 4.0) text-anchor="end" font-size="10" { "now" }
                @if empty {
                    text.empty x=((WIDTH + LEFT) / 2.0) y=(HEIGHT / 2.0) text-anchor="middle" font-size="12" {
                        "No samples yet"
                    }
                }
                @for (i, l) in lines.iter().enumerate() {
                    polyline class="series" data-series=(l.name) data-points=(l.points.len())
                        fill="none" stroke=(COLOURS[i % COLOURS.len()]) stroke-width="1.5"
                        points=(coordinates(&l.points, now_ms, top)) {
                        title { (l.name) }
                    }
                }
            }
            @if !lines.is_empty() {
                p.legend {
                    @for (i, l) in lines.iter().enumerate() {
                        span style={ "color:" (COLOURS[i % COLOURS.len()]) } { "■ " }
                        (l.name)
                        @if let Some(last) = l.points.last() { " " (PreEscaped("&nbsp;")) (unit.format(last.v)) }
                        " "
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_map_into_the_plot_area() {
        let now = 10_000_000;
        let start = now - WINDOW.as_millis() as i64;
        let pts = [
            Point {
                t_ms: start,
                v: 0.0,
            },
            Point { t_ms: now, v: 50.0 },
            // Outside the window: left out.
            Point {
                t_ms: start - 1,
                v: 9.0,
            },
        ];
        assert_eq!(coordinates(&pts, now, 100.0), "64.0,142.0 640.0,75.0");
    }

    #[test]
    fn a_chart_has_one_polyline_per_series_and_a_scale() {
        let now = 5_000_000;
        let lines = [
            Line {
                name: "in".into(),
                points: vec![
                    Point {
                        t_ms: now - 10_000,
                        v: 1.0,
                    },
                    Point {
                        t_ms: now,
                        v: 2500.0,
                    },
                ],
            },
            Line {
                name: "out".into(),
                points: vec![],
            },
        ];
        let svg = render("c", "Throughput", Unit::BytesPerSecond, &lines, now).into_string();
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        assert!(svg.contains(r#"data-series="in" data-points="2""#), "{svg}");
        assert!(svg.contains("2.50 kB/s"), "{svg}");
        assert!(!svg.contains("No samples yet"));
        let none = render("c", "t", Unit::Count, &[], now).into_string();
        assert!(none.contains("No samples yet"));
    }

    #[test]
    fn values_are_human() {
        assert_eq!(human(0.0, "B"), "0 B");
        assert_eq!(human(1234.0, "B"), "1.23 kB");
        assert_eq!(human(12_500_000.0, ""), "12.5 M");
        assert_eq!(Unit::PerSecond.format(0.25), "0.25/s");
    }
}
