//! Values off a Prometheus text exposition page (what `/metrics` answers).

/// The sum over every series of `name` whose labels include each `labels` pair (0 when none matches).
pub fn metric(page: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .filter(|l| labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The value of exactly one sample line, named with all its labels as the page prints them
/// (`name{a="x",b="y"}`); 0 when absent.
pub fn sample(page: &str, name_and_labels: &str) -> f64 {
    page.lines()
        .find(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "# HELP x_total x\n# TYPE x_total counter\nx_total{kind=\"a\",source=\"im\"} 2\n\
                        x_total{kind=\"b\",source=\"im\"} 3\nx_total_other 7\ny 1.5\n";

    #[test]
    fn sums_matching_series() {
        assert_eq!(metric(PAGE, "x_total", &[]), 5.0);
        assert_eq!(metric(PAGE, "x_total", &[("kind", "b")]), 3.0);
        assert_eq!(metric(PAGE, "y", &[]), 1.5);
        assert_eq!(metric(PAGE, "z", &[]), 0.0);
    }

    #[test]
    fn reads_one_exact_sample() {
        assert_eq!(sample(PAGE, r#"x_total{kind="a",source="im"}"#), 2.0);
        assert_eq!(sample(PAGE, r#"x_total{kind="a"}"#), 0.0, "a label subset is not the sample");
        assert_eq!(sample(PAGE, "x_total"), 0.0);
        assert_eq!(sample(PAGE, "y"), 1.5);
    }
}
