//! Prints the configuration reference: `cargo run -p strata-config --example config_reference > docs/configuration.md`.

fn main() {
    print!("{}", strata_config::Configs::markdown_reference());
}
