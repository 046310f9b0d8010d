//! The exporter against a second provider stand-in, written independently of the
//! simulator (`tests/standin/run.py`, Python standard library only), with expected
//! metrics worked out by hand from the contract.

mod common;

#[test]
fn an_independent_stand_in_sees_every_order_counted_as_its_record_dictates() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/standin/run.py");
    let output = std::process::Command::new("python3")
        .args([script, common::BIN])
        .output()
        .expect("python3 runs (Debian's python3 is part of this machine's image)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("ALL EXPECTATIONS MET"),
        "stand-in check failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
