//! The control plane's layers hold: the domain knows nothing of the layers around it,
//! and the store, the reconciler and the orchestrators never reach into the HTTP layer
//! (what `render-manifests` and the API share lives in `domain/`).

use std::path::{Path, PathBuf};

fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            files.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// Every `use`/path mention of a forbidden module in the files under `layer`.
fn violations(layer: &str, forbidden: &[&str]) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../control-plane/src")
        .join(layer);
    let mut found = Vec::new();
    let files = sources(&root);
    assert!(!files.is_empty(), "no sources under {}", root.display());
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable source");
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for module in forbidden {
                if code.contains(&format!("crate::{module}::"))
                    || code.contains(&format!("crate::{module};"))
                    || code.contains(&format!("crate::{{{module}"))
                {
                    found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    found
}

#[test]
fn orchestrators_store_and_reconciler_do_not_import_the_http_layer() {
    for layer in ["orchestrator", "store", "reconcile"] {
        let found = violations(layer, &["http", "app"]);
        assert!(
            found.is_empty(),
            "{layer} imports the HTTP layer:\n{}",
            found.join("\n")
        );
    }
}

#[test]
fn the_domain_imports_no_outer_layer() {
    let found = violations(
        "domain",
        &["http", "app", "store", "orchestrator", "reconcile"],
    );
    assert!(
        found.is_empty(),
        "domain imports an outer layer:\n{}",
        found.join("\n")
    );
}
