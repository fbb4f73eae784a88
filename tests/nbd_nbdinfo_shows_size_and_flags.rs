//! `nbdinfo` (libnbd) sees the export's size and the transmission flags the server
//! advertises: flush, FUA, trim, write-zeroes, multi-conn, structured replies; and a
//! `--readonly` export as read-only without trim or zero. `nbdinfo --list` lists it.

mod nbd_common;

use std::process::Command;

use nbd_common::*;

fn nbdinfo(args: &[&str]) -> String {
    let out = run_ok(Command::new("nbdinfo").args(args));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn has(text: &str, line: &str) {
    assert!(
        text.lines().any(|l| l.trim() == line),
        "nbdinfo output lacks `{line}`:\n{text}"
    );
}

#[test]
fn nbdinfo_shows_size_and_flags() {
    if !have("nbdinfo") {
        return;
    }
    let size = (48 << 20) + 4096;
    let image = sparse_file("nbdinfo", size);
    let server = Server::start(&["--image", image.path().to_str().unwrap()]);
    let text = nbdinfo(&[&server.uri()]);
    let size_line = format!("export-size: {size}");
    assert!(
        text.lines().any(|l| {
            let l = l.trim();
            l == size_line || l.starts_with(&format!("{size_line} "))
        }),
        "nbdinfo output lacks `{size_line}`:\n{text}"
    );
    for flag in [
        "can_flush: true",
        "can_fua: true",
        "can_trim: true",
        "can_zero: true",
        "can_multi_conn: true",
        "can_df: true",
        "is_read_only: false",
        "block_size_minimum: 1",
        "block_size_maximum: 33554432",
    ] {
        has(&text, flag);
    }
    assert!(text.contains("using structured packets"), "{text}");

    let list = nbdinfo(&["--list", &server.uri()]);
    assert!(list.contains("export=\"\""), "nbdinfo --list: {list}");
    server.stop();
}

#[test]
fn nbdinfo_shows_a_readonly_export() {
    if !have("nbdinfo") {
        return;
    }
    let image = sparse_file("nbdinfo-ro", 1 << 20);
    let server = Server::start(&["--image", image.path().to_str().unwrap(), "--readonly"]);
    let text = nbdinfo(&[&server.uri()]);
    for flag in ["is_read_only: true", "can_trim: false", "can_zero: false"] {
        has(&text, flag);
    }
    server.stop();
}
