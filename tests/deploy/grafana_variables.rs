//! The one table of Grafana variables (tests/grafana) substitutes every form of reference.

use crate::grafana::*;

#[test]
fn every_form_of_reference_is_substituted() {
    assert_eq!(
        substitute(
            r#"rate(x{a=~"$app_id",c=~"${country}",ch=~"${channel:regex}"}[$__rate_interval])"#
        )
        .unwrap(),
        r#"rate(x{a=~".*",c=~".*",ch=~".*"}[30s])"#
    );
    assert_eq!(
        substitute("increase(x[$__range]) / $__interval").unwrap(),
        "increase(x[5m]) / 5s"
    );
}

#[test]
fn a_dollar_that_names_nothing_stays() {
    assert_eq!(substitute(r#"x{a=~"b$"} $1"#).unwrap(), r#"x{a=~"b$"} $1"#);
}

#[test]
fn an_unknown_variable_is_an_error() {
    assert!(substitute("rate(x[$__rate_interval]) * $instance")
        .unwrap_err()
        .contains("$instance"));
}
