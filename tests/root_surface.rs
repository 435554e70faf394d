//! The crate's public surface, read from its source (DESIGN §4, "The root"):
//!
//! - the root holds at most [`MAX_ROOT`] documented names besides modules;
//! - each documented public item has one path: no name is both at the root and in a
//!   public module, or in two public modules;
//! - an old name kept for migration is `#[deprecated]` and `#[doc(hidden)]`, and so does
//!   not count.
//!
//! It parses `src/` with `syn` rather than asking rustdoc, so that it runs in a plain
//! `cargo test`, on stable, in milliseconds. Every `cfg` counts: the surface is the one
//! `--all-features` shows.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use syn::{Attribute, Item, UseTree, Visibility};

/// The most documented names at the crate root, besides modules.
const MAX_ROOT: usize = 25;

/// A public name, and the module path it is declared or re-exported at.
#[derive(Debug)]
struct Name {
    name: String,
    module: String,
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn parse(path: &Path) -> syn::File {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    syn::parse_file(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// `#[doc(hidden)]`, alone or among other `doc` arguments.
fn is_hidden(attrs: &[Attribute]) -> bool {
    attrs.iter().any(|attr| {
        // `#[doc = "…"]` (a doc comment) is not a list: only `#[doc(…)]` can hide.
        attr.path().is_ident("doc")
            && matches!(attr.meta, syn::Meta::List(_))
            && attr
                .parse_nested_meta(|meta| {
                    if meta.path.is_ident("hidden") {
                        Err(meta.error("hidden"))
                    } else {
                        // Skip `inline`, `cfg(…)` and the like, with their arguments.
                        let _ = meta.value().and_then(|v| v.parse::<syn::Expr>());
                        Ok(())
                    }
                })
                .is_err()
    })
}

fn is_deprecated(attrs: &[Attribute]) -> bool {
    attrs.iter().any(|attr| attr.path().is_ident("deprecated"))
}

fn is_public(vis: &Visibility) -> bool {
    matches!(vis, Visibility::Public(_))
}

/// The names a `use` tree brings in; a glob is refused, since what it exports cannot be
/// read here (and a reader of the source cannot see it either).
fn use_names(tree: &UseTree, module: &str, out: &mut Vec<String>) {
    match tree {
        UseTree::Path(path) => use_names(&path.tree, module, out),
        UseTree::Name(name) => out.push(name.ident.to_string()),
        UseTree::Rename(rename) => out.push(rename.rename.to_string()),
        UseTree::Glob(_) => panic!("a public glob re-export in `{module}`: name what it exports"),
        UseTree::Group(group) => {
            for tree in &group.items {
                use_names(tree, module, out);
            }
        }
    }
}

/// What an item adds to its module's documented surface, and its attributes.
fn item_names<'a>(item: &'a Item, module: &str) -> (Vec<String>, &'a [Attribute]) {
    let one = |vis: &Visibility, ident: &syn::Ident| {
        if is_public(vis) {
            vec![ident.to_string()]
        } else {
            Vec::new()
        }
    };
    match item {
        Item::Use(item) if is_public(&item.vis) => {
            let mut names = Vec::new();
            use_names(&item.tree, module, &mut names);
            (names, &item.attrs)
        }
        Item::Struct(item) => (one(&item.vis, &item.ident), &item.attrs),
        Item::Enum(item) => (one(&item.vis, &item.ident), &item.attrs),
        Item::Union(item) => (one(&item.vis, &item.ident), &item.attrs),
        Item::Trait(item) => (one(&item.vis, &item.ident), &item.attrs),
        Item::TraitAlias(item) => (one(&item.vis, &item.ident), &item.attrs),
        Item::Fn(item) => (one(&item.vis, &item.sig.ident), &item.attrs),
        Item::Const(item) => (one(&item.vis, &item.ident), &item.attrs),
        Item::Static(item) => (one(&item.vis, &item.ident), &item.attrs),
        Item::Type(item) => (one(&item.vis, &item.ident), &item.attrs),
        // Modules are walked, not counted; `macro_rules!` macros are exported at the root
        // by `#[macro_export]` whatever the module, and are checked apart.
        _ => (Vec::new(), &[]),
    }
}

/// Walks a public module: its documented names, then its public submodules.
/// `dir` is where its file submodules live.
fn walk(items: &[Item], module: &str, dir: &Path, names: &mut Vec<Name>, hidden: &mut Vec<Name>) {
    for item in items {
        if let Item::Mod(m) = item {
            if !is_public(&m.vis) || is_hidden(&m.attrs) {
                continue;
            }
            let path = format!("{module}::{}", m.ident);
            let sub_dir = dir.join(m.ident.to_string());
            match &m.content {
                Some((_, inline)) => walk(inline, &path, &sub_dir, names, hidden),
                None => {
                    let file = [dir.join(format!("{}.rs", m.ident)), sub_dir.join("mod.rs")]
                        .into_iter()
                        .find(|f| f.exists())
                        .unwrap_or_else(|| panic!("no file for `{path}`"));
                    let parsed = parse(&file);
                    walk(&parsed.items, &path, &sub_dir, names, hidden);
                }
            }
            continue;
        }
        let (found, attrs) = item_names(item, module);
        let target = if is_hidden(attrs) {
            &mut *hidden
        } else {
            &mut *names
        };
        for name in found {
            target.push(Name {
                name,
                module: module.to_owned(),
            });
        }
    }
}

struct Surface {
    root: Vec<Name>,
    everywhere: Vec<Name>,
}

fn surface(lib: &syn::File) -> Surface {
    let mut everywhere = Vec::new();
    let mut hidden = Vec::new();
    walk(&lib.items, "crate", &src(), &mut everywhere, &mut hidden);
    // Each hidden root name is a migration alias: deprecated, so that its users hear of
    // the new path.
    for name in hidden.iter().filter(|n| n.module == "crate") {
        let item = lib
            .items
            .iter()
            .find(|item| item_names(item, "crate").0.contains(&name.name))
            .expect("found above");
        let (_, attrs) = item_names(item, "crate");
        assert!(
            is_deprecated(attrs),
            "`{}` is hidden at the root but not #[deprecated]: a hidden root name is a \
             migration alias, or it should not be public",
            name.name
        );
    }
    let root = everywhere
        .iter()
        .filter(|n| n.module == "crate")
        .map(|n| Name {
            name: n.name.clone(),
            module: n.module.clone(),
        })
        .collect();
    Surface { root, everywhere }
}

#[test]
fn the_root_holds_at_most_25_documented_names() {
    let lib = parse(&src().join("lib.rs"));
    let root = surface(&lib).root;
    let list: Vec<&str> = root.iter().map(|n| n.name.as_str()).collect();
    println!("{} documented root names: {}", list.len(), list.join(", "));
    assert!(
        root.len() <= MAX_ROOT,
        "{} documented names at the crate root, more than {MAX_ROOT}: {}.\n\
         Move what an application does not name in its first hour to its subject's \
         module (DESIGN §4); keep an old root name only as a #[deprecated] #[doc(hidden)] \
         alias.",
        root.len(),
        list.join(", ")
    );
}

#[test]
fn each_documented_item_has_one_path() {
    let lib = parse(&src().join("lib.rs"));
    let mut paths: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let everywhere = surface(&lib).everywhere;
    for name in &everywhere {
        paths.entry(&name.name).or_default().push(&name.module);
    }
    let twice: Vec<String> = paths
        .iter()
        .filter(|(_, modules)| modules.len() > 1)
        .map(|(name, modules)| format!("{name} in {}", modules.join(" and ")))
        .collect();
    assert!(
        twice.is_empty(),
        "names at more than one public path: {}",
        twice.join("; ")
    );
    // The walk saw the modules it should: a sanity check on the walk itself, so that a
    // change in how modules are declared cannot make this test pass by seeing nothing.
    for (name, module) in [
        ("KeyManager", "crate"),
        ("KeyDigest", "crate::key"),
        ("UsageTracker", "crate::usage"),
        ("ScopeCatalogue", "crate::manager"),
        ("CachedKeyStore", "crate::store::cached"),
        ("KeyFeedListener", "crate::store::feed"),
        ("ManualClock", "crate::testing"),
        ("store_conformance_tests", "crate::testing"),
    ] {
        assert_eq!(
            paths.get(name).map(Vec::as_slice),
            Some(&[module][..]),
            "{name}"
        );
    }
}

#[test]
fn exported_macros_are_hidden_at_the_root() {
    // `#[macro_export]` puts a macro at the root whatever its module; the documented path
    // is the `pub use` in `testing`, so the root copy is hidden.
    fn visit(items: &[Item], file: &Path, found: &mut Vec<String>) {
        for item in items {
            match item {
                Item::Macro(m) if m.attrs.iter().any(|a| a.path().is_ident("macro_export")) => {
                    let name = m
                        .ident
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default();
                    assert!(
                        is_hidden(&m.attrs),
                        "`{name}!` ({}) is exported at the root without #[doc(hidden)]",
                        file.display()
                    );
                    found.push(name);
                }
                Item::Mod(m) => {
                    if let Some((_, inline)) = &m.content {
                        visit(inline, file, found);
                    }
                }
                _ => {}
            }
        }
    }
    let mut found = Vec::new();
    let mut stack = vec![src()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("src/ is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                visit(&parse(&path).items, &path, &mut found);
            }
        }
    }
    found.sort();
    assert_eq!(
        found,
        [
            "__conformance",
            "event_store_conformance_tests",
            "limit_backend_conformance_tests",
            "rotation_conformance_tests",
            "store_conformance_tests",
            "update_conformance_tests",
            "usage_conformance_tests",
        ]
    );
}
