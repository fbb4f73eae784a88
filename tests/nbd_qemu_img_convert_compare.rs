//! `qemu-img convert` of a random 64 MiB file onto the export, then `qemu-img compare` of
//! the file against the export: identical through the protocol and in the image file.

mod nbd_common;

use std::process::Command;

use nbd_common::*;

const SIZE: usize = 64 << 20;

#[test]
fn convert_random_64_mib_then_compare_identical() {
    if !have("qemu-img") {
        return;
    }
    let source = TempPath::new("convert-src");
    std::fs::write(source.path(), pseudo_random(SIZE, 0x5eed)).unwrap();
    let image = sparse_file("convert-dst", SIZE as u64);
    let server = Server::start(&["--image", image.path().to_str().unwrap()]);
    let uri = server.uri();
    let src = source.path().to_str().unwrap();

    run_ok(Command::new("qemu-img").args(["convert", "-n", "-f", "raw", "-O", "raw", src, &uri]));
    let out =
        run_ok(Command::new("qemu-img").args(["compare", "-f", "raw", "-F", "raw", src, &uri]));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Images are identical"),
        "qemu-img compare: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    server.stop();
    assert!(
        std::fs::read(image.path()).unwrap() == std::fs::read(source.path()).unwrap(),
        "the image file differs from the source"
    );
}
