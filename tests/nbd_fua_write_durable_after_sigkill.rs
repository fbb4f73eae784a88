//! A write acknowledged with FUA is in the image file after the server is killed with
//! SIGKILL right after the reply: the reply comes only after the data (and its
//! `fdatasync`) completed. Checked with a raw client and with qemu-io's `write -f`.

mod nbd_common;

use nbd_common::*;

#[test]
fn fua_write_is_in_the_image_after_sigkill() {
    let image = sparse_file("fua-raw", 8 << 20);
    let server = Server::start(&["--image", image.path().to_str().unwrap()]);
    let (mut c, _, _) = Raw::ready(server.addr, false);
    let data = pseudo_random(256 << 10, 42);
    assert_eq!(c.write(1, 12_345, &data, CMD_FLAG_FUA), 0);
    server.kill_hard();
    let file = std::fs::read(image.path()).unwrap();
    assert!(
        file[12_345..12_345 + data.len()] == data[..],
        "FUA data missing after SIGKILL"
    );
}

#[test]
fn qemu_io_fua_write_is_in_the_image_after_sigkill() {
    if !have("qemu-io") {
        return;
    }
    let image = sparse_file("fua-qemu", 8 << 20);
    let server = Server::start(&["--image", image.path().to_str().unwrap()]);
    qemu_io(
        &server.uri(),
        &["write -f -P 0x5a 1048577 70000".to_owned()],
    );
    server.kill_hard();
    let file = std::fs::read(image.path()).unwrap();
    assert!(
        file[1_048_577..1_048_577 + 70_000]
            .iter()
            .all(|&b| b == 0x5a)
    );
    assert_eq!(file[1_048_576], 0);
    assert_eq!(file[1_048_577 + 70_000], 0);
}
