//! Small charts drawn on the server as inline SVG: a sparkline and an occupancy bar. They weigh
//! a few hundred bytes, need no script, and say their numbers in their accessible name (the
//! pages also show the numbers as a table).

use maud::{Markup, html};

/// The polyline points of `values` in a `width` × `height` box (1 px margin), the lowest value
/// at the bottom; a flat series sits in the middle.
pub fn polyline(values: &[i64], width: f64, height: f64) -> String {
    let (lo, hi) = match (values.iter().min(), values.iter().max()) {
        (Some(lo), Some(hi)) => (*lo as f64, *hi as f64),
        _ => return String::new(),
    };
    let step = if values.len() > 1 {
        (width - 2.0) / (values.len() - 1) as f64
    } else {
        0.0
    };
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let y = if hi > lo {
                1.0 + (height - 2.0) * (1.0 - (*v as f64 - lo) / (hi - lo))
            } else {
                height / 2.0
            };
            format!("{:.1},{:.1}", 1.0 + step * i as f64, y)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A sparkline of `values`, named by `label`.
pub fn sparkline(values: &[i64], label: &str) -> Markup {
    const W: f64 = 120.0;
    const H: f64 = 28.0;
    html! {
        svg.spark viewBox=(format!("0 0 {W} {H}")) width=(W) height=(H) role="img" aria-label=(label) {
            @if values.len() > 1 {
                polyline points=(polyline(values, W, H)) {}
            }
        }
    }
}

/// How full an occupancy is, for its colour (and its text, so colour is never alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    Ok,
    Warning,
    Critical,
}

impl Fill {
    /// The alert thresholds' bands: 90 % warns, 100 % is critical.
    pub fn of(share: f64) -> Self {
        if share >= 1.0 {
            Self::Critical
        } else if share >= 0.9 {
            Self::Warning
        } else {
            Self::Ok
        }
    }

    pub fn class(self) -> &'static str {
        match self {
            Self::Ok => "fill-ok",
            Self::Warning => "fill-warning",
            Self::Critical => "fill-critical",
        }
    }
}

/// A bar filled to `share` (capped at the full width), decorative: its number is beside it.
pub fn bar(share: f64) -> Markup {
    let width = (share.clamp(0.0, 1.0) * 100.0).round();
    html! {
        svg.bar viewBox="0 0 100 8" preserveAspectRatio="none" aria-hidden="true" focusable="false" {
            rect.track width="100" height="8" rx="2" {}
            rect class=(Fill::of(share).class()) width=(width) height="8" rx="2" {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_span_the_box_with_the_peak_on_top() {
        assert_eq!(polyline(&[0, 10], 12.0, 12.0), "1.0,11.0 11.0,1.0");
        assert_eq!(polyline(&[5, 5, 5], 12.0, 12.0), "1.0,6.0 6.0,6.0 11.0,6.0");
        assert_eq!(polyline(&[], 12.0, 12.0), "");
    }

    #[test]
    fn fills_follow_the_alert_thresholds() {
        assert_eq!(Fill::of(0.5), Fill::Ok);
        assert_eq!(Fill::of(0.9), Fill::Warning);
        assert_eq!(Fill::of(1.2), Fill::Critical);
        let bar = bar(1.5).into_string();
        assert!(
            bar.contains(r#"width="100""#) && bar.contains("fill-critical"),
            "{bar}"
        );
    }
}
