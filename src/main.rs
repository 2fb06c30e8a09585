//! `liqd`: the one binary. Subcommands are thin wrappers over the crates.
fn main() {}
