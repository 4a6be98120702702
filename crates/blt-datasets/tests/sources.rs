//! Sources: enumeration order, globs, hidden and empty files, lists, keys, read limits, errors.

use std::fs;
use std::path::{Path, PathBuf};

use blt_datasets::{document_key, enumerate, DocumentOrigin, Error, InputSpec};

fn write(root: &Path, rel: &str, bytes: &[u8]) -> PathBuf {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, bytes).unwrap();
    path
}

fn tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "b.txt", b"bee");
    write(root, "a/z.md", b"zed");
    write(root, "a/b/c.txt", b"deep");
    write(root, ".hidden", b"h");
    write(root, "empty.txt", b"");
    write(root, "a.b", b"dot");
    write(root, "a_b", b"underscore");
    dir
}

fn names(spec: &InputSpec) -> Vec<String> {
    enumerate(spec)
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect()
}

#[test]
fn dir_walks_nested_sorted_with_hidden_and_empty() {
    let dir = tree();
    let spec = InputSpec::Dir {
        root: dir.path().to_owned(),
        glob: None,
    };
    assert_eq!(
        names(&spec),
        [
            ".hidden",
            "a.b",
            "a/b/c.txt",
            "a/z.md",
            "a_b",
            "b.txt",
            "empty.txt"
        ]
    );
    let docs = enumerate(&spec).unwrap();
    let empty = docs.iter().find(|d| d.name == "empty.txt").unwrap();
    assert_eq!(empty.byte_len, 0);
    assert_eq!(empty.read(None).unwrap(), b"");
    let deep = docs.iter().find(|d| d.name == "a/b/c.txt").unwrap();
    assert_eq!(deep.byte_len, 4);
    assert_eq!(deep.read(None).unwrap(), b"deep");
    assert_eq!(
        deep.source,
        DocumentOrigin::Path(dir.path().join("a").join("b").join("c.txt"))
    );
    // Deterministic across runs, and folder keys do not depend on where the folder is.
    assert_eq!(enumerate(&spec).unwrap(), docs);
    assert_eq!(deep.key, document_key("a/b/c.txt"));
}

#[test]
fn dir_glob_filters_relative_paths() {
    let dir = tree();
    let glob = |g: &str| {
        names(&InputSpec::Dir {
            root: dir.path().to_owned(),
            glob: Some(g.to_owned()),
        })
    };
    assert_eq!(glob("*.txt"), ["a/b/c.txt", "b.txt", "empty.txt"]);
    assert_eq!(glob("a/*"), ["a/z.md"]);
    assert_eq!(glob("a/**"), ["a/b/c.txt", "a/z.md"]);
    assert_eq!(glob("{*.md,.hidden}"), [".hidden", "a/z.md"]);
    assert!(glob("*.nothing").is_empty());
    let err = enumerate(&InputSpec::Dir {
        root: dir.path().to_owned(),
        glob: Some("[".into()),
    })
    .unwrap_err();
    assert!(
        matches!(err, Error::InvalidGlob { ref glob, .. } if glob == "["),
        "{err}"
    );
}

#[test]
fn keys_are_unique_and_only_key_characters() {
    let dir = tree();
    let docs = enumerate(&InputSpec::Dir {
        root: dir.path().to_owned(),
        glob: None,
    })
    .unwrap();
    let mut keys: Vec<&str> = docs.iter().map(|d| d.key.as_str()).collect();
    for key in &keys {
        assert!(
            key.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
            "{key}"
        );
    }
    let ab = docs.iter().find(|d| d.name == "a.b").unwrap();
    let a_b = docs.iter().find(|d| d.name == "a_b").unwrap();
    assert!(ab.key.starts_with("a_b-") && a_b.key.starts_with("a_b-"));
    assert_ne!(ab.key, a_b.key);
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), docs.len());
    // A fixed value: `printf 'a/b/c.txt' | sha256sum` starts with c7ba2e9f217070bf.
    assert_eq!(document_key("a/b/c.txt"), "a_b_c_txt-c7ba2e9f217070bf");
}

#[test]
fn missing_paths_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    for spec in [
        InputSpec::File(missing.clone()),
        InputSpec::Dir {
            root: missing.clone(),
            glob: None,
        },
        InputSpec::List(vec![missing.clone()]),
    ] {
        match enumerate(&spec).unwrap_err() {
            Error::Io { path, source } => {
                assert_eq!(path, missing);
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("{other}"),
        }
    }
    let file = write(dir.path(), "f.txt", b"x");
    assert!(matches!(
        enumerate(&InputSpec::Dir { root: file.clone(), glob: None }).unwrap_err(),
        Error::NotADirectory { path } if path == file
    ));
    assert!(matches!(
        enumerate(&InputSpec::File(dir.path().to_owned())).unwrap_err(),
        Error::NotAFile { path, .. } if path == dir.path()
    ));
    // A file deleted between enumerate and read.
    let docs = enumerate(&InputSpec::File(file.clone())).unwrap();
    fs::remove_file(&file).unwrap();
    assert!(matches!(docs[0].read(None).unwrap_err(), Error::Io { path, .. } if path == file));
}

#[cfg(unix)]
#[test]
fn unreadable_paths_are_named() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "secret.txt", b"x");
    let sub = dir.path().join("locked");
    write(&sub, "inner.txt", b"y");
    fs::set_permissions(&file, fs::Permissions::from_mode(0o000)).unwrap();
    fs::set_permissions(&sub, fs::Permissions::from_mode(0o000)).unwrap();
    let restore = || fs::set_permissions(&sub, fs::Permissions::from_mode(0o755)).unwrap();
    if fs::read(&file).is_ok() {
        // Running as root: permissions do not stop reads, so there is nothing to test.
        restore();
        return;
    }
    let docs = enumerate(&InputSpec::File(file.clone())).unwrap();
    let err = docs[0].read(None).unwrap_err();
    assert!(
        matches!(&err, Error::Io { path, .. } if *path == file),
        "{err}"
    );
    let err = enumerate(&InputSpec::Dir {
        root: dir.path().to_owned(),
        glob: None,
    })
    .unwrap_err();
    restore();
    assert!(
        matches!(&err, Error::Io { path, .. } if *path == sub),
        "{err}"
    );
}

#[cfg(unix)]
#[test]
fn symlink_loops_and_broken_links_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "sub/f.txt", b"f");
    std::os::unix::fs::symlink(dir.path(), dir.path().join("sub/loop")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("nowhere"), dir.path().join("broken")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("sub/f.txt"), dir.path().join("link.txt")).unwrap();
    let spec = InputSpec::Dir {
        root: dir.path().to_owned(),
        glob: None,
    };
    assert_eq!(names(&spec), ["link.txt", "sub/f.txt"]);
}

#[test]
fn list_keeps_order_and_drops_duplicates() {
    let dir = tree();
    let root = dir.path();
    let b = root.join("b.txt");
    let c = root.join("a/b/c.txt");
    let c_again = root.join("a/./b/c.txt");
    let docs = enumerate(&InputSpec::List(vec![
        b.clone(),
        c.clone(),
        b.clone(),
        c_again,
    ]))
    .unwrap();
    let paths: Vec<_> = docs.iter().map(|d| d.path().unwrap().to_owned()).collect();
    assert_eq!(paths, [b.clone(), c]);
    // A list entry's key is the key of the same path as a file input.
    assert_eq!(enumerate(&InputSpec::File(b)).unwrap()[0].key, docs[0].key);
}

#[test]
fn read_limits_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "big.bin", &[7u8; 100]);
    let doc = enumerate(&InputSpec::File(file.clone())).unwrap().remove(0);
    assert_eq!(doc.read(Some(100)).unwrap().len(), 100);
    match doc.read(Some(99)).unwrap_err() {
        Error::TooLarge { path, len, max } => {
            assert_eq!((path, len, max), (file, 100, 99));
        }
        other => panic!("{other}"),
    }
}

#[test]
fn text_input_is_one_document() {
    let docs = enumerate(&InputSpec::Text("hello".into())).unwrap();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].key, "text-2cf24dba5fb0a30e");
    assert_eq!(docs[0].byte_len, 5);
    assert_eq!(docs[0].read(Some(5)).unwrap(), b"hello");
}
