//! End-to-end tests of `mqgate config ...` and the top-level CLI, run on the real binary.

mod common;

use common::run_mqgate;

#[test]
fn config_check_accepts_every_example() {
    for example in [
        "examples/raspberry-pi-gateway.toml",
        "examples/standalone-proxy.toml",
    ] {
        let path = format!("{}/{example}", env!("CARGO_MANIFEST_DIR"));
        let (code, stdout, stderr) = run_mqgate(&["config", "check", &path]);
        assert_eq!(code, 0, "{example}: {stderr}");
        assert_eq!(stdout.trim(), "OK", "{example}");
    }
}

#[test]
fn config_check_points_at_the_line_and_column_and_exits_64() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    std::fs::write(&path, "[broker]\nmax_inflight = 20\nmax_inflihgt = 5\n").unwrap();
    let (code, stdout, stderr) = run_mqgate(&["config", "check", path.to_str().unwrap()]);
    assert_eq!(code, 64);
    assert!(
        stdout.is_empty(),
        "nothing on stdout for a bad file: {stdout}"
    );
    let expected = format!("{}:3:1:", path.display());
    assert!(stderr.contains(&expected), "want {expected} in: {stderr}");
    assert!(stderr.contains("unknown field `max_inflihgt`"), "{stderr}");
}

#[test]
fn config_check_reports_every_validation_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("invalid.toml");
    let text = "[[listener]]\nkind = \"tcp\"\nbind = \"127.0.0.1:1883\"\n\n\
                [[listener]]\nkind = \"tcp\"\nbind = \"127.0.0.1:1883\"\n\n\
                [[listener]]\nkind = \"tls\"\nbind = \"127.0.0.1:8883\"\n";
    std::fs::write(&path, text).unwrap();
    let (code, _, stderr) = run_mqgate(&["config", "check", path.to_str().unwrap()]);
    assert_eq!(code, 64);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with(&*path.to_string_lossy()))
        .collect();
    assert!(
        lines.len() >= 2,
        "both the port clash and the missing TLS cert: {stderr}"
    );
    assert!(
        stderr.contains("listener[1]") || stderr.contains("listeners[1]"),
        "{stderr}"
    );
}

#[test]
fn config_check_on_a_missing_file_exits_64_naming_the_path() {
    let (code, _, stderr) = run_mqgate(&["config", "check", "/nonexistent/mqgate.toml"]);
    assert_eq!(code, 64);
    assert!(stderr.contains("/nonexistent/mqgate.toml"), "{stderr}");
}

#[test]
fn config_default_prints_a_config_that_checks_ok() {
    let (code, stdout, _) = run_mqgate(&["config", "default"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("127.0.0.1:1883"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("default.toml");
    std::fs::write(&path, &stdout).unwrap();
    let (code, stdout, stderr) = run_mqgate(&["config", "check", path.to_str().unwrap()]);
    assert_eq!((code, stdout.trim()), (0, "OK"), "{stderr}");
}

#[test]
fn version_flag_prints_the_version() {
    let (code, stdout, _) = run_mqgate(&["--version"]);
    assert_eq!(code, 0);
    assert!(stdout.contains(env!("CARGO_PKG_VERSION")));
}
