//! Shared by the node's bench binaries: the repository root and forge artifacts.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::process::Command;

use alloy_primitives::Bytes;
use serde_json::Value;

/// The repository root (from the crate directory cargo sets at run time).
pub fn root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("..")
}

/// Contract `name` of `file` compiled by forge (built first if `out/` lacks it): its creation
/// code (`field` "bytecode") or its runtime code ("deployedBytecode").
pub fn artifact(file: &str, name: &str, field: &str) -> Bytes {
    let path = root().join("out").join(file).join(format!("{name}.json"));
    if !path.exists() {
        let ok = Command::new(root().join("node_modules/.bin/forge"))
            .arg("build")
            .current_dir(root())
            .status()
            .map(|s| s.success());
        assert_eq!(ok.ok(), Some(true), "forge build failed");
    }
    let doc: Value = serde_json::from_slice(&std::fs::read(&path).expect("artifact")).expect("json");
    doc[field]["object"].as_str().expect("bytecode").parse().expect("hex")
}
