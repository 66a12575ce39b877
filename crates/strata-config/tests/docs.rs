//! docs/configuration.md is generated from the definition table; this test fails when
//! the two drift apart. Regenerate with:
//! `cargo run -p strata-config --example config_reference > docs/configuration.md`

#[test]
fn configuration_reference_matches_the_definitions() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
    let on_disk = std::fs::read_to_string(&path).expect("docs/configuration.md exists");
    assert!(
        on_disk == strata_config::Configs::markdown_reference(),
        "{} is stale; regenerate it with `cargo run -p strata-config --example config_reference > docs/configuration.md`",
        path.display()
    );
}
