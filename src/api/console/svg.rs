//! Small bar charts that the report's template draws as SVG on the server: one bar a
//! probe or a target, so that the one down at 80% stands out among those at 100%.

use serde::Serialize;

/// One bar: its label, its length on a scale of 0 to 300, its figure as read, and its
/// row's top.
#[derive(Debug, Serialize, PartialEq)]
pub struct Bar {
    pub label: String,
    pub width: f64,
    pub text: String,
    pub y: usize,
}

/// The row height, the same in the template.
const ROW: usize = 22;

/// Bars for `values` on a scale up to `max` (0: up to the largest value).
pub fn bars(values: impl Iterator<Item = (String, f64, String)>, max: f64) -> Vec<Bar> {
    let values: Vec<(String, f64, String)> = values.collect();
    let top = if max > 0.0 {
        max
    } else {
        values.iter().map(|v| v.1).fold(0.0, f64::max)
    };
    values
        .into_iter()
        .enumerate()
        .map(|(i, (label, value, text))| Bar {
            label,
            width: if top > 0.0 && value.is_finite() {
                (value.max(0.0) / top * 300.0).min(300.0).round()
            } else {
                0.0
            },
            text,
            y: i * ROW,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_bar_is_as_long_as_its_share_of_the_scale() {
        let bars = super::bars(
            [
                ("a".to_string(), 50.0, "50%".to_string()),
                ("b".to_string(), 100.0, "100%".to_string()),
            ]
            .into_iter(),
            100.0,
        );
        assert_eq!(
            (bars[0].width, bars[1].width, bars[1].y),
            (150.0, 300.0, 22)
        );
        let unscaled = super::bars(
            [("p".to_string(), 7.0, "7 ms".to_string())].into_iter(),
            0.0,
        );
        assert_eq!(unscaled[0].width, 300.0);
    }
}
