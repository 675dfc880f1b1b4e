//! The SDK's modules form layers, each using only the layers below it, so
//! the module graph has no cycle ("SDK internals" in docs/architecture.md).

/// Lowest first. A module may name `crate::m` only for an `m` in a lower
/// layer; `lib.rs`, the root, re-exports from all of them.
const LAYERS: &[&[&str]] = &[
    &["error"],
    &["event", "push", "quest", "encryption"],
    &["connector"],
    &["connection"],
    &["room_events", "listen"],
    &["options", "history"],
    &["client", "end_user"],
    &["history_pager"],
    &["blocking"],
    &["methods", "end_user_methods"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

#[test]
fn each_module_uses_only_the_layers_below_it() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut problems = Vec::new();
    let mut seen = 0;
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let module = path.file_stem().unwrap().to_str().unwrap().to_owned();
        if module == "lib" {
            continue;
        }
        let Some(own) = layer_of(&module) else {
            problems.push(format!("{module}.rs is in no layer: add it to LAYERS and to the docs"));
            continue;
        };
        seen += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            // Code only: doc links to other layers are fine.
            let code = line.split("//").next().unwrap_or_default();
            for (at, _) in code.match_indices("crate::") {
                if code[..at].ends_with('$') {
                    continue;
                }
                let used: String =
                    code[at + "crate::".len()..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                match layer_of(&used) {
                    Some(layer) if layer < own || used == module => {}
                    Some(_) => problems.push(format!("{module}.rs:{}: uses `{used}`, not below it", n + 1)),
                    None => problems.push(format!(
                        "{module}.rs:{}: `crate::{used}` is no module (name the module, not a re-export)",
                        n + 1
                    )),
                }
            }
        }
    }
    assert_eq!(seen, LAYERS.concat().len(), "a module in LAYERS has no file");
    assert!(problems.is_empty(), "the module layers are broken:\n{}", problems.join("\n"));
}
