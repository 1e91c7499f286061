//! `fixpoint-model`: the model CLI.
fn main() {}
