//! fio with `--verify=crc32c` on the mount: random reads and writes of 4 KiB to 1 MiB
//! blocks, through the page cache (`psync`) and with `O_DIRECT` at queue depth 16
//! (`libaio`), every block read back and checked. A lost, misplaced or changed block fails
//! fio's verify (exit status non-zero); the test also checks that the file on the
//! backing directory holds what the mount shows.

mod fuse_common;

use std::process::Command;

use fuse_common::*;

fn fio(m: &Mount, name: &str, extra: &[&str]) {
    let file = m.at(name);
    run_ok(
        Command::new("fio")
            .arg(format!("--name={name}"))
            .arg(format!("--filename={}", file.display()))
            .args([
                "--size=48m",
                "--bsrange=4k-1m",
                "--verify=crc32c",
                "--verify_state_save=0",
                "--verify_fatal=1",
                "--do_verify=1",
                "--randrepeat=0",
                "--output-format=terse",
            ])
            .args(extra),
    );
    assert_eq!(
        std::fs::read(m.at(name)).unwrap(),
        std::fs::read(m.backing(name)).unwrap(),
        "the mount and the backing file differ after fio"
    );
}

#[test]
fn psync_random_read_write_verified() {
    if !can_mount() || !have("fio") {
        return;
    }
    let m = Mount::start("fio-psync", &[]);
    fio(
        &m,
        "psync.dat",
        &["--rw=randrw", "--ioengine=psync", "--verify_backlog=64"],
    );
    fio(
        &m,
        "psync2.dat",
        &["--rw=randwrite", "--ioengine=psync", "--numjobs=1"],
    );
}

#[test]
fn libaio_direct_random_write_verified() {
    if !can_mount() || !have("fio") {
        return;
    }
    let m = Mount::start("fio-aio", &[]);
    fio(
        &m,
        "aio.dat",
        &[
            "--rw=randwrite",
            "--ioengine=libaio",
            "--iodepth=16",
            "--direct=1",
        ],
    );
}
