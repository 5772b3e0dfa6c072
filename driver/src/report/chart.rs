//! Line charts as inline SVG, generated in Rust for the self-contained HTML report (no
//! script, no external resource).

use std::fmt::Write as _;

use crate::report::markup::escape;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 34.0;
/// Lines with at most this many points get a marker per point.
const MARKERS_UP_TO: usize = 80;

/// One named line of `(x, y)` points.
#[derive(Debug, Clone)]
pub struct Line {
    pub name: String,
    pub color: &'static str,
    pub points: Vec<(f64, f64)>,
}

/// A chart of lines over time in seconds.
#[derive(Debug, Clone)]
pub struct Chart {
    /// Short machine name, used as `data-chart`.
    pub id: &'static str,
    pub title: String,
    pub y_unit: &'static str,
    pub lines: Vec<Line>,
    /// Right end of the time axis (the run's elapsed time).
    pub x_max: f64,
    /// Draw a highlighted y = 0 line (the stock chart).
    pub zero_line: bool,
}

impl Chart {
    /// The chart as a `<figure>` holding an `<svg>` and its legend.
    pub fn to_svg(&self) -> String {
        let points = || self.lines.iter().flat_map(|l| l.points.iter());
        let x_max = points().map(|p| p.0).fold(self.x_max, f64::max);
        let (mut y_min, mut y_max) =
            points().fold((0.0f64, 0.0f64), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
        if y_max - y_min < 1e-9 {
            y_max = y_min + 1.0;
        }
        let y_step = nice_step((y_max - y_min) / 4.0);
        y_min = (y_min / y_step).floor() * y_step;
        y_max = (y_max / y_step).ceil() * y_step;
        let x_step = nice_step(x_max.max(1e-3) / 6.0);
        let x_max = (x_max.max(1e-3) / x_step).ceil() * x_step;
        let sx = |x: f64| LEFT + x / x_max * (WIDTH - LEFT - RIGHT);
        let sy = |y: f64| HEIGHT - BOTTOM - (y - y_min) / (y_max - y_min) * (HEIGHT - TOP - BOTTOM);

        let mut s = String::new();
        let _ = write!(
            s,
            r#"<figure class="chart" data-chart="{id}"><figcaption>{title}</figcaption><svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{title}">"#,
            id = self.id,
            title = escape(&self.title),
        );
        s.push_str(r##"<g class="axes" font-size="11" fill="#555">"##);
        let mut y = y_min;
        while y <= y_max + y_step / 2.0 {
            let py = num(sy(y));
            let _ = write!(
                s,
                r##"<line x1="{LEFT}" x2="{x2}" y1="{py}" y2="{py}" stroke="#e4e4e4"/><text x="{tx}" y="{ty}" text-anchor="end">{label}</text>"##,
                x2 = WIDTH - RIGHT,
                tx = LEFT - 6.0,
                ty = num(sy(y) + 4.0),
                label = tick_label(y, y_step),
            );
            y += y_step;
        }
        let mut x = 0.0;
        while x <= x_max + x_step / 2.0 {
            let _ = write!(
                s,
                r#"<text x="{px}" y="{ty}" text-anchor="middle">{label}</text>"#,
                px = num(sx(x)),
                ty = HEIGHT - BOTTOM + 16.0,
                label = tick_label(x, x_step),
            );
            x += x_step;
        }
        let _ = write!(
            s,
            r#"<text x="{cx}" y="{by}" text-anchor="middle">time (s)</text><text x="12" y="{my}" transform="rotate(-90 12 {my})" text-anchor="middle">{unit}</text></g>"#,
            cx = num((LEFT + WIDTH - RIGHT) / 2.0),
            by = HEIGHT - 4.0,
            my = num((TOP + HEIGHT - BOTTOM) / 2.0),
            unit = escape(self.y_unit),
        );
        if self.zero_line {
            let zy = num(sy(0.0));
            let _ = write!(
                s,
                r##"<line class="zero" x1="{LEFT}" x2="{x2}" y1="{zy}" y2="{zy}" stroke="#c62828" stroke-width="1.5" stroke-dasharray="6 4"/>"##,
                x2 = WIDTH - RIGHT,
            );
        }
        for line in &self.lines {
            let coords: Vec<String> = line
                .points
                .iter()
                .map(|&(x, y)| format!("{},{}", num(sx(x)), num(sy(y))))
                .collect();
            let _ = write!(
                s,
                r#"<polyline class="series" data-name="{name}" data-points="{n}" fill="none" stroke="{color}" stroke-width="2" points="{pts}"/>"#,
                name = escape(&line.name),
                n = coords.len(),
                color = line.color,
                pts = coords.join(" "),
            );
            if coords.len() <= MARKERS_UP_TO {
                for &(x, y) in &line.points {
                    let _ = write!(
                        s,
                        r#"<circle cx="{}" cy="{}" r="2.5" fill="{}"/>"#,
                        num(sx(x)),
                        num(sy(y)),
                        line.color
                    );
                }
            }
        }
        s.push_str(r#"</svg><ul class="legend">"#);
        for line in &self.lines {
            let _ = write!(
                s,
                r#"<li><span class="swatch" style="background:{}"></span>{}</li>"#,
                line.color,
                escape(&line.name)
            );
        }
        s.push_str("</ul></figure>");
        s
    }
}

/// A coordinate with two decimals (keeps the file small).
fn num(v: f64) -> String {
    format!("{:.2}", v)
        .trim_end_matches('0')
        .trim_end_matches('.')
        .to_string()
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if raw <= 0.0 || !raw.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|&step| step >= raw)
        .unwrap_or(10.0 * magnitude)
}

/// A tick value with as many decimals as its step needs.
fn tick_label(v: f64, step: f64) -> String {
    let decimals = (-step.log10().floor()).clamp(0.0, 4.0) as usize;
    let v = if v.abs() < step / 1e6 { 0.0 } else { v };
    format!("{v:.decimals$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_and_labels() {
        assert_eq!(nice_step(0.3), 0.5);
        assert_eq!(nice_step(7.0), 10.0);
        assert_eq!(nice_step(120.0), 200.0);
        assert_eq!(tick_label(0.25, 0.05), "0.25");
        assert_eq!(tick_label(-200.0, 100.0), "-200");
        assert_eq!(num(12.500), "12.5");
    }

    #[test]
    fn draws_lines_markers_and_the_zero_line() {
        let chart = Chart {
            id: "stock",
            title: "Stock <over> time".into(),
            y_unit: "units",
            lines: vec![Line {
                name: "stock".into(),
                color: "#1565c0",
                points: vec![(0.0, 100.0), (0.5, -20.0), (1.0, -50.0)],
            }],
            x_max: 1.0,
            zero_line: true,
        };
        let svg = chart.to_svg();
        assert!(svg.contains(r#"data-points="3""#), "{svg}");
        assert_eq!(svg.matches("<circle").count(), 3);
        assert!(svg.contains(r#"class="zero""#));
        assert!(svg.contains("Stock &lt;over&gt; time"));
        assert!(svg.contains(">-50<"), "the axis reaches below zero: {svg}");
    }
}
